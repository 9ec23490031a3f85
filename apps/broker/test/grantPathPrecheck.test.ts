import { describe, expect, it } from "vitest"
import { GrantPath, isPlainGrantPath } from "../src/Schemas.js"

/** The background-token route takes a path isPlainGrantPath passes without zod: it must never pass more. */
describe("isPlainGrantPath agrees with GrantPath", () => {
  const subjects = [
    "u-alice",
    "",
    "a".repeat(256),
    "a".repeat(257),
    "tab\there",
    "nul\u0000",
    "del\u007f",
    "unit separator\u001f",
    "space and ünïcode 🙂",
    "\ud83d\ude42".repeat(128),
    "\ud83d\ude42".repeat(129),
    "\ud83d\ude42".repeat(257),
    "next line\u0085"
  ]
  const providers = ["notes", "", "a".repeat(64), "a".repeat(65), "no/slash", "dots.and_dashes-1", "ünï"]
  const paths: Array<unknown> = [
    null,
    "notes",
    {},
    { subject: "u-alice" },
    { subject: "u-alice", provider: "notes", extra: "x" },
    { subject: 1, provider: "notes" },
    { subject: "u-alice", provider: ["notes"] }
  ]
  for (const subject of subjects) for (const provider of providers) paths.push({ subject, provider })

  it("passes exactly the paths zod accepts, but a subject over 256 UTF-16 units (zod counts code points)", () => {
    for (const path of paths) {
      const accepted = GrantPath.safeParse(path).success
      const long =
        typeof path === "object" && path !== null && String(Reflect.get(path, "subject")).length > 256
      expect({ path, plain: isPlainGrantPath(path) }).toEqual({ path, plain: accepted && !long })
    }
  })
})
