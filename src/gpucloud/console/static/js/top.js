// The top bar: brand, the console's sections, the notifications bell and the account menu.

import { session } from './api.js';
import { h } from './dom.js';
import { mountBell } from './bell.js';

const SECTIONS = [
  ['/linodes', 'Linodes'],
  ['/events', 'Events'],
  ['/profile/tokens', 'API tokens'],
  ['/profile/keys', 'SSH keys'],
  ['/profile/password', 'Password'],
  ['/account/billing', 'Billing'],
];

let bell = null;

export function renderTop(top, path, signedIn) {
  if (bell) { bell(); bell = null; }
  top.hidden = false;
  const brand = h('a', { class: 'brand', href: signedIn ? '/linodes' : '/login' },
    h('img', { src: '/assets/favicon.svg', alt: '', width: 22, height: 22 }), 'gpucloud');
  if (!signedIn) { top.replaceChildren(h('div', { class: 'top-inner' }, brand)); return; }
  const nav = h('nav', { 'aria-label': 'Console' }, h('ul', {}, SECTIONS.map(([href, label]) => h('li', {},
    h('a', { href, 'aria-current': path === href || path.startsWith(`${href}/`) ? 'page' : null }, label)))));
  const bellSlot = h('div', { class: 'bell-slot' });
  const who = session();
  const logout = h('button', { type: 'button', class: 'link-button', dataset: { logout: '' },
    onclick: () => document.dispatchEvent(new CustomEvent('console:logout')) }, 'Log out');
  top.replaceChildren(h('div', { class: 'top-inner' }, brand, nav,
    h('div', { class: 'top-right' }, bellSlot, h('span', { class: 'who' }, who.email), logout)));
  bell = mountBell(bellSlot);
}
