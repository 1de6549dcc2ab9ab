// A password strength meter. The server's zxcvbn has the last word (its refusal shows next
// to the field); this estimate only guides: length, variety, and the patterns zxcvbn punishes.

import { h } from './dom.js';

const COMMON = /(password|passw0rd|qwerty|asdf|zxcv|letmein|welcome|admin|iloveyou|monkey|dragon|12345|abc123|111111)/i;
const WORDS = ['Very weak', 'Weak', 'Fair', 'Strong', 'Very strong'];

function estimate(password) {
  if (!password) return 0;
  let pool = 0;
  if (/[a-z]/.test(password)) pool += 26;
  if (/[A-Z]/.test(password)) pool += 26;
  if (/[0-9]/.test(password)) pool += 10;
  if (/[^a-zA-Z0-9]/.test(password)) pool += 33;
  let bits = password.length * Math.log2(Math.max(pool, 1));
  if (COMMON.test(password)) bits -= 30;
  if (/(.)\1\1/.test(password)) bits -= 15;
  if (/^[a-zA-Z]+\d{1,4}[!@#$%^&*]?$/.test(password)) bits -= 20; // word + year + symbol
  if (bits < 28) return 0;
  if (bits < 40) return 1;
  if (bits < 60) return 2;
  if (bits < 80) return 3;
  return 4;
}

// The meter under a password input: a <meter> with a visible word, updated as one types.
export function strengthMeter(input) {
  const meter = h('meter', { min: 0, max: 4, low: 2, high: 3, optimum: 4, value: 0, 'aria-label': 'Password strength' });
  const word = h('span', { class: 'strength-word' }, '');
  const box = h('div', { class: 'strength', dataset: { strength: '0' } }, meter, word);
  input.addEventListener('input', () => {
    const score = estimate(input.value);
    meter.value = score;
    word.textContent = input.value ? WORDS[score] : '';
    box.dataset.strength = String(score);
  });
  return box;
}
