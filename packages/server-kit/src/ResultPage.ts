import escapeHtml from "escape-html"

export interface ResultPageContent {
  readonly ok: boolean
  readonly title: string
  readonly detail: string
  /** A link back, shown only for an http(s) URL. */
  readonly returnTo?: string | null | undefined
}

/**
 * The small page a user sees after consent: what happened, in plain words; a link back where allowed.
 * `product` ends the page title (`token-broker`, `token-broker MCP server`).
 */
export const resultPage = (product: string, result: ResultPageContent): string => {
  const back =
    result.returnTo !== undefined && result.returnTo !== null && /^https?:\/\//.test(result.returnTo)
      ? `<p><a href="${escapeHtml(result.returnTo)}">Continue</a></p>`
      : ""
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(result.title)} - ${escapeHtml(product)}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}
.mark{font-size:2.5rem;line-height:1}
.ok .mark{color:#1a7f37}.fail .mark{color:#b42318}
p{line-height:1.5}
</style>
</head>
<body class="${result.ok ? "ok" : "fail"}" data-result="${result.ok ? "ok" : "error"}">
<div class="mark">${result.ok ? "&#10003;" : "&#10007;"}</div>
<h1>${escapeHtml(result.title)}</h1>
<p>${escapeHtml(result.detail)}</p>
${back}
</body>
</html>
`
}
