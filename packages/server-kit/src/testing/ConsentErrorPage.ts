import { expect } from "vitest"

/** A provider's `error_description` that tries to put a phone number on the user's page. */
const PLANTED_DESCRIPTION = "Call +1-555-0100 to restore your account now"

/**
 * The consent callback as a provider sends it when it refuses: `state` and `error`, with a description
 * no page may show.
 */
export const errorCallback = (callbackUrl: string, state: string, error: string): URL => {
  const callback = new URL(callbackUrl)
  callback.searchParams.set("state", state)
  callback.searchParams.set("error", error)
  callback.searchParams.set("error_description", PLANTED_DESCRIPTION)
  return callback
}

/**
 * The page a refused consent lands on: it says `shows` in its own words, never the provider's text nor
 * an unknown error code, and carries the headers that keep it from being sniffed, framed or scripted.
 */
export const expectSafeErrorPage = async (page: Response, shows: RegExp): Promise<void> => {
  const html = await page.text()
  expect(html).toMatch(shows)
  expect(html).not.toContain("555-0100")
  expect(html).not.toContain("made-up")
  expect(page.headers.get("x-content-type-options")).toBe("nosniff")
  expect(page.headers.get("x-frame-options")).toBe("DENY")
  expect(page.headers.get("content-security-policy")).toContain("default-src 'none'")
}
