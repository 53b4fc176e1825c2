// theme.js — light or dark. Follows the system (prefers-color-scheme) until the toggle picks
// one, which localStorage remembers. A classic script loaded in <head>, before the page is
// drawn, so a remembered choice never flashes the other theme first.
(function () {
  'use strict';
  const KEY = 'ffarm-theme';
  const root = document.documentElement;
  const remembered = () => {
    try {
      return localStorage.getItem(KEY);
    } catch {
      return null;
    }
  };
  const saved = remembered();
  if (saved === 'light' || saved === 'dark') root.dataset.theme = saved;

  const current = () =>
    root.dataset.theme || (matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light');

  document.addEventListener('DOMContentLoaded', () => {
    const button = document.getElementById('theme');
    if (!button) return;
    const describe = () => {
      const other = current() === 'dark' ? 'light' : 'dark';
      button.setAttribute('aria-label', `Switch to the ${other} theme`);
      button.title = `Switch to the ${other} theme`;
    };
    button.addEventListener('click', () => {
      const next = current() === 'dark' ? 'light' : 'dark';
      root.dataset.theme = next;
      try {
        localStorage.setItem(KEY, next);
      } catch {
        // Storage refused (private mode): the choice lasts for this page only.
      }
      describe();
    });
    matchMedia('(prefers-color-scheme: dark)').addEventListener('change', describe);
    describe();
  });
})();
