// Regions, plans and images, fetched once per page load (they change with deployments only).

import { all } from './api.js';

let cache = null;

export function catalog() {
  if (!cache) {
    cache = Promise.all([all('/regions'), all('/linode/types'), all('/images')]).then(([regions, types, images]) => ({
      regions, types, images,
      region: id => regions.find(r => r.id === id),
      type: id => types.find(t => t.id === id),
      city: id => (regions.find(r => r.id === id) || { label: id }).label,
    }));
    cache.catch(() => { cache = null; });
  }
  return cache;
}

// The plans an account sees change with the GPU flag and trial: drop the cache on demand.
export function forgetCatalog() { cache = null; }
