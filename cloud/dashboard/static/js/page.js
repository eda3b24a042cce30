// The entry point of every page: runs the module of the page (body[data-page]), if it has one.
const modules = {
  overview: "./overview.js",
  analytics: "./analytics.js",
  meter: "./meter.js",
  alerts: "./alerts.js",
  billing: "./billing.js",
  invoice: "./invoice.js",
  home: "./portal.js",
  consumer: "./portal.js",
  reports: "./reports.js",
  "report-formats": "./report_formats.js",
  "api-keys": "./api_keys.js",
};
// on a phone the menu starts folded (without scripts it simply stays open)
const menu = document.querySelector("details.menu");
if (menu && window.matchMedia("(max-width: 820px)").matches) menu.open = false;

const name = document.body.dataset.page;
if (modules[name]) {
  import(modules[name]).then((module) => module.start()).catch((error) => {
    console.error(error);
  });
}

// how many notifications wait unread, beside the inbox link of every page
const badge = document.getElementById("unread-badge");
if (badge) {
  fetch("/api/v1/notifications?unread=true&limit=1", { credentials: "same-origin" })
    .then((response) => (response.ok ? response.json() : null))
    .then((inbox) => {
      if (inbox && inbox.unread > 0) {
        badge.textContent = inbox.unread > 99 ? "99+" : String(inbox.unread);
        badge.hidden = false;
      }
    })
    .catch(() => {});
}

// a form whose fields depend on a choice (a gateway's command: a meter for a read, dates for a
// backfill): the select carries data-shows, each dependent field data-for="choice choice";
// only the chosen one's fields show (without scripts every field shows, each saying when it
// counts). A hidden field is disabled too, so what it holds is not sent.
for (const chooser of document.querySelectorAll("select[data-shows]")) {
  const form = chooser.form;
  const follow = () => {
    for (const field of form.querySelectorAll("[data-for]")) {
      const shown = field.dataset.for.split(" ").includes(chooser.value);
      field.hidden = !shown;
      for (const input of field.querySelectorAll("input, select, textarea")) input.disabled = !shown;
    }
  };
  chooser.addEventListener("change", follow);
  follow();
}
