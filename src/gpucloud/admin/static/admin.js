// gpucloud admin: the little behaviour the server-rendered pages need, no library.
// - [data-poll]: replace the element with the fragment at its URL every second until the
//   fragment comes back without data-poll (e.g. an instance reached running);
// - [data-replace-url]: after a POST rendered a page, show the page's own URL, so reloading
//   does not post again;
// - a progress panel's status is copied to the instance's row ([data-status-cell]);
// - [data-boot-form]: only plans sellable in the chosen region are offered.
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
      statusEverywhere(fresh);
      if (fresh.hasAttribute("data-poll")) poll(fresh);
    } catch (e) {
      poll(el);
    }
  }, 1000);
}

// a progress panel's status also goes to the instance's row in the tables of the same page
function statusEverywhere(panel) {
  const id = panel.getAttribute("data-progress");
  const pill = panel.querySelector(".progress-line [data-status]");
  if (!id || !pill) return;
  document.querySelectorAll(`tr[data-instance="${id}"] [data-status-cell]`).forEach((cell) => {
    cell.innerHTML = pill.outerHTML;
  });
}

// the boot form offers only the plans that can be sold in the chosen region
function sellableOnly(form) {
  const region = form.querySelector("[data-boot-region]");
  const plan = form.querySelector("[data-boot-plan]");
  if (!region || !plan) return;
  const update = () => {
    let first = null;
    plan.querySelectorAll("option").forEach((o) => {
      const ok = (o.getAttribute("data-regions") || "").split(" ").includes(region.value);
      o.hidden = !ok; o.disabled = !ok;
      if (ok && !first) first = o;
    });
    if (plan.selectedOptions.length === 0 || plan.selectedOptions[0].disabled) {
      plan.value = first ? first.value : "";
    }
    const none = form.parentElement.querySelector("[data-no-plan]");
    if (none) none.hidden = !!first;
  };
  region.addEventListener("change", update);
  update();
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-boot-form]").forEach(sellableOnly);
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
