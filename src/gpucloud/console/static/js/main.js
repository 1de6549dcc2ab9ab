// The console's router: paths are Cloud Manager's; each page module renders into <main>
// and may return a function that stops what it started (polling) when the page is left.

import { session, signOut, whenExpired } from './api.js';
import { h } from './dom.js';
import { renderTop } from './top.js';

const PUBLIC = new Set(['/login', '/signup']);
const ROUTES = [
  [/^\/login$/, () => import('./pages/auth.js').then(m => m.login)],
  [/^\/signup$/, () => import('./pages/auth.js').then(m => m.signup)],
  [/^\/linodes$/, () => import('./pages/linodes.js').then(m => m.list)],
  [/^\/linodes\/create$/, () => import('./pages/create.js').then(m => m.create)],
  [/^\/linodes\/(\d+)$/, () => import('./pages/detail.js').then(m => m.detail)],
  [/^\/events$/, () => import('./pages/events.js').then(m => m.events)],
  [/^\/profile\/tokens$/, () => import('./pages/profile.js').then(m => m.tokens)],
  [/^\/profile\/keys$/, () => import('./pages/profile.js').then(m => m.keys)],
  [/^\/profile\/password$/, () => import('./pages/profile.js').then(m => m.password)],
  [/^\/account\/billing$/, () => import('./pages/billing.js').then(m => m.billing)],
];

let leave = null;
let navigation = 0;  // a page still loading when the next navigation starts is stopped, never shown

export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  return route();
}

async function route() {
  if (leave) { leave(); leave = null; }
  let path = location.pathname.replace(/\/+$/, '') || '/';
  const signedIn = Boolean(session());
  if (!signedIn && !PUBLIC.has(path)) { history.replaceState(null, '', '/login'); path = '/login'; }
  if (signedIn && (PUBLIC.has(path) || path === '/')) { history.replaceState(null, '', '/linodes'); path = '/linodes'; }
  const main = document.getElementById('main');
  renderTop(document.getElementById('top'), path, signedIn);
  for (const [pattern, load] of ROUTES) {
    const match = path.match(pattern);
    if (!match) continue;
    const mine = ++navigation;
    const page = await load();
    if (mine !== navigation) return;
    const view = h('div', { class: 'view' });  // each page draws into its own element
    main.replaceChildren(view);
    let stop = null;
    try {
      stop = await page(view, ...match.slice(1));
    } catch (error) {
      if (mine === navigation) view.append(h('div', { class: 'form-alert', role: 'alert' }, `This page could not load: ${error.message}. `,
        h('a', { href: location.pathname }, 'Try again')));
      return;
    }
    if (mine !== navigation) { if (typeof stop === 'function') stop(); return; }
    leave = typeof stop === 'function' ? stop : null;
    const heading = view.querySelector('h1');
    document.title = heading ? `${heading.textContent} · gpucloud` : 'gpucloud';
    if (!main.contains(document.activeElement)) main.focus({ preventScroll: true });  // a page may focus a field
    return;
  }
  navigation += 1;
  main.replaceChildren(h('h1', {}, 'Not found'), h('p', {}, 'There is no such page. ',
    h('a', { href: '/linodes' }, 'Go to your Linodes')));
}

// Same-origin links are routed here, without a reload.
document.addEventListener('click', event => {
  const link = event.target.closest('a[href]');
  if (!link || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey
      || link.target || link.hasAttribute('download')) return;
  const url = new URL(link.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith('/v4') || url.pathname.startsWith('/admin')) return;
  event.preventDefault();
  navigate(url.pathname + url.search);
});

document.addEventListener('console:logout', async () => {
  await signOut();
  navigate('/login');
});

whenExpired(() => navigate('/login', { replace: true }));
window.addEventListener('popstate', route);
route();
