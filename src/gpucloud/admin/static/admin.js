// gpucloud admin: the little behaviour the server-rendered pages need, no library.
// - [data-poll]: replace the element with the fragment at its URL every second until the
//   fragment comes back without data-poll (e.g. an instance reached running);
// - [data-replace-url]: after a POST rendered a page, show the page's own URL, so reloading
//   does not post again.
"use strict";

function poll(el) {
  const url = el.getAttribute("data-poll");
  setTimeout(async () => {
    try {
      const response = await fetch(url, { headers: { "Accept": "text/html" }, credentials: "same-origin" });
      if (!response.ok) { poll(el); return; }
      const holder = document.createElement("div");
      holder.innerHTML = (await response.text()).trim();
      const fresh = holder.firstElementChild;
      el.replaceWith(fresh);
      if (fresh.hasAttribute("data-poll")) poll(fresh);
    } catch (e) {
      poll(el);
    }
  }, 1000);
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-poll]").forEach(poll);
  const replace = document.querySelector("[data-replace-url]");
  if (replace) history.replaceState(null, "", replace.getAttribute("data-replace-url"));
  // a form's button shows that it was pressed, and cannot be pressed twice
  document.querySelectorAll("form[method=post]").forEach((form) => {
    form.addEventListener("submit", () => {
      form.querySelectorAll("button").forEach((b) => { setTimeout(() => { b.disabled = true; }, 0); });
    });
  });
});
