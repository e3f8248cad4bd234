// Drives headless Chromium through a list of steps and checks every page it lands on with
// axe-core. Run by crates/cli/tests/it/browser.rs, which decides the steps and judges the result;
// this script only carries them out and reports.
//
// Usage: node drive.mjs <chromium executable> <plan.json>
// plan.json: {"steps": [step, ...]}, each step one of
//   {"goto": url}                      navigate
//   {"fill": {selector: value, ...}}   type into form fields
//   {"click": selector}                click and wait for the page it leads to
//   {"capture": name}                  remember the current URL and the main text under `name`
//   {"expect_path": prefix}            fail unless the current URL's path starts with prefix
//   {"cookies": name}                  remember the cookies' names and attributes under `name`
//   {"post": {"name", "url", "form", "from"}}
//                                      POST a form with the browser context's own HTTP stack
//                                      (its cookies), as an app's back end or script would (the
//                                      token endpoint); `from` maps form fields to values taken
//                                      from earlier captures ("capture.query.key" of a captured
//                                      URL, "capture.json.key" of a captured answer); the JSON
//                                      answer and status are captured under `name`
//   {"goto": url, "from": {param: path}} navigate with query parameters taken from captures
// Prints one JSON object: {"pages": [{url, status, title, lang, violations}], "captures": {},
// "csp_reports": [...], "error": null | "..."}. Exits 0 whenever it could report.

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

const [executablePath, planPath] = process.argv.slice(2);
const plan = JSON.parse(readFileSync(planPath, "utf8"));
const report = { pages: [], captures: {}, csp_reports: [], error: null };

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"],
});

try {
  const context = await browser.newContext({ locale: "en-GB" });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  page.on("console", (msg) => {
    const text = msg.text();
    if (/Content Security Policy/i.test(text)) report.csp_reports.push(text);
  });

  // Every document the browser lands on (after a goto or a click) is checked once.
  let lastStatus = null;
  page.on("response", (response) => {
    if (response.request().isNavigationRequest() && response.frame() === page.mainFrame()) {
      lastStatus = response.status();
    }
  });

  async function audit() {
    await page.waitForLoadState("load");
    // Evaluated through the DevTools protocol, which the page's CSP does not govern.
    await page.evaluate(axeSource);
    const result = await page.evaluate(async () => {
      // eslint-disable-next-line no-undef
      const r = await axe.run(document, { resultTypes: ["violations"] });
      return r.violations.map((v) => ({
        id: v.id,
        impact: v.impact,
        help: v.help,
        targets: v.nodes.map((n) => n.target.join(" ")),
      }));
    });
    report.pages.push({
      url: page.url(),
      status: lastStatus,
      title: await page.title(),
      lang: await page.evaluate(() => document.documentElement.lang),
      violations: result,
    });
  }

  // "capture.query.key" or "capture.json.key": a value remembered by an earlier step.
  function lookup(path) {
    const [name, kind, key] = path.split(".");
    const captured = report.captures[name];
    if (!captured) throw new Error(`no capture ${name}`);
    const value =
      kind === "query" ? new URL(captured.url).searchParams.get(key) : (captured.json ?? {})[key];
    if (value === undefined || value === null) throw new Error(`no ${path}`);
    return String(value);
  }

  for (const step of plan.steps) {
    if (step.goto !== undefined) {
      lastStatus = null;
      const url = new URL(step.goto);
      for (const [param, path] of Object.entries(step.from ?? {})) {
        url.searchParams.set(param, lookup(path));
      }
      await page.goto(url.toString());
      await audit();
    } else if (step.post !== undefined) {
      const form = { ...(step.post.form ?? {}) };
      for (const [field, path] of Object.entries(step.post.from ?? {})) {
        form[field] = lookup(path);
      }
      const response = await context.request.post(step.post.url, { form });
      let json = null;
      try {
        json = await response.json();
      } catch {
        json = null;
      }
      report.captures[step.post.name] = { url: step.post.url, status: response.status(), json };
    } else if (step.fill !== undefined) {
      for (const [selector, value] of Object.entries(step.fill)) {
        await page.fill(selector, value);
      }
    } else if (step.click !== undefined) {
      lastStatus = null;
      await Promise.all([
        page.waitForEvent("framenavigated", { predicate: (f) => f === page.mainFrame() }),
        page.click(step.click),
      ]);
      await audit();
    } else if (step.capture !== undefined) {
      const main = (await page.$("main")) ?? (await page.$("body"));
      report.captures[step.capture] = {
        url: page.url(),
        text: main ? (await main.innerText()).trim() : "",
      };
    } else if (step.expect_path !== undefined) {
      const path = new URL(page.url()).pathname;
      if (!path.startsWith(step.expect_path)) {
        throw new Error(`expected a page under ${step.expect_path}, got ${page.url()}`);
      }
    } else if (step.cookies !== undefined) {
      report.captures[step.cookies] = {
        url: page.url(),
        cookies: (await context.cookies()).map((c) => ({
          name: c.name,
          httpOnly: c.httpOnly,
          secure: c.secure,
          sameSite: c.sameSite,
          path: c.path,
        })),
      };
    } else {
      throw new Error(`unknown step ${JSON.stringify(step)}`);
    }
  }
} catch (e) {
  report.error = String(e && e.stack ? e.stack : e);
} finally {
  await browser.close();
}

process.stdout.write(JSON.stringify(report) + "\n");
