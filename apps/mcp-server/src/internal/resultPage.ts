const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

/** The small page a user sees after consent: what happened, in plain words. */
export const resultPage = (result: {
  readonly ok: boolean
  readonly title: string
  readonly detail: string
}): string =>
  `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(result.title)} - token-broker MCP server</title>
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
</body>
</html>
`
