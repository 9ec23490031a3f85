/**
 * Colour decision for one stream, from the conventions NO_COLOR (https://no-color.org) and FORCE_COLOR.
 * Imports nothing: the executable decides with it before it loads the CLI.
 */
export const colorFor = (isTTY: boolean, env: Readonly<Record<string, string | undefined>>): boolean => {
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== "0") return true
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== "") return false
  if (env.TERM === "dumb") return false
  return isTTY
}
