import { chromium } from "playwright-core"

/** Debian's chromium, headless, as root, on a machine without internet (see the flags' reasons in STACK.md). */
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium"
const FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync"
]

export interface Browser {
  /**
   * In a fresh browser context (no cookies: the user signs in anew), opens `url` (dev-idp's authorization
   * URL), signs in on the login page, allows on the consent page and follows the redirect. Returns the
   * last page's URL and text.
   */
  readonly consent: (
    url: string,
    user: { readonly username: string; readonly password: string }
  ) => Promise<{ readonly url: string; readonly text: string }>
  readonly close: () => Promise<void>
}

/** Chromium with a new empty profile (playwright gives every launch its own temporary user-data-dir). */
export const launchBrowser = async (): Promise<Browser> => {
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS })
  return {
    consent: async (url, user) => {
      const context = await browser.newContext()
      try {
        const page = await context.newPage()
        await page.goto(url)
        await page.fill('form[data-step="login"] input[name="username"]', user.username)
        await page.fill('form[data-step="login"] input[name="password"]', user.password)
        await page.click('form[data-step="login"] button[type="submit"]')
        await page.click('form[data-step="consent"] button[type="submit"]')
        await page.waitForURL((target) => !target.pathname.startsWith("/interaction/"))
        await page.waitForLoadState("load")
        return { url: page.url(), text: (await page.textContent("body")) ?? "" }
      } finally {
        await context.close()
      }
    },
    close: () => browser.close()
  }
}
