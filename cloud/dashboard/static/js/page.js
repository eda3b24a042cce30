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
