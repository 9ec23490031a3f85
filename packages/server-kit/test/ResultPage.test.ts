import { describe, expect, it } from "vitest"
import { resultPage } from "../src/ResultPage.js"

describe("the result page", () => {
  it("escapes what it shows and links back only to an http(s) address", () => {
    const page = resultPage("token-broker", {
      ok: false,
      title: `<script>alert("t")</script>`,
      detail: `a & b 'c'`,
      returnTo: `https://app.example/back?x="y"`
    })
    expect(page).not.toContain("<script>")
    expect(page).toContain("&lt;script&gt;alert(&quot;t&quot;)&lt;/script&gt; - token-broker</title>")
    expect(page).toContain("<p>a &amp; b &#39;c&#39;</p>")
    expect(page).toContain(`<a href="https://app.example/back?x=&quot;y&quot;">Continue</a>`)
    expect(page).toContain(`data-result="error"`)
    expect(
      resultPage("x", { ok: true, title: "t", detail: "d", returnTo: "javascript:alert(1)" })
    ).not.toContain("<a href")
  })
})
