/**
 * Where a server's CPU time goes during each route's load: reads the `.cpuprofile` files that
 * `node --cpu-prof` wrote and, for each named set of load runs (times in microseconds of the monotonic
 * clock that V8's profiler and `process.hrtime` share, with the requests each run answered), sums the
 * samples' time per request by function (self time, and total time: the function anywhere on the stack)
 * and by where the code lives (a package in node_modules, node's internals, our own source, GC).
 * Our TypeScript runs through tsx, which strips whitespace (every function is on line 1): its positions
 * are mapped back to source lines by transforming the file again the way tsx does (esbuild, whitespace
 * minified, names kept) and reading that source map.
 *
 *   npx tsx bench/cpuProfile.ts <dir>      (dir holds windows.json and the profiles' folders it names)
 */
import { readdir, readFile } from "node:fs/promises"
import { SourceMap } from "node:module"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { transform } from "esbuild"

interface ProfileNode {
  readonly id: number
  readonly callFrame: {
    readonly functionName: string
    readonly url: string
    readonly lineNumber: number
    readonly columnNumber: number
  }
  readonly children?: ReadonlyArray<number>
}
interface Profile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly startTime: number
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}
export interface Run {
  /** Microseconds of the monotonic clock. */
  readonly start: number
  readonly end: number
  readonly requests: number
}
/** Load runs by name, each with the folder (under the profile dir) of the profiles of the server it loaded. */
export type Windows = Record<string, { readonly profiles: string; readonly runs: Array<Run> }>

/** The monotonic clock of V8's profiler, in microseconds. */
export const nowMicros = (): number => Number(process.hrtime.bigint() / 1000n)

const whereOf = (url: string, name: string): string => {
  if (name === "(idle)" || name === "(program)" || name === "(garbage collector)") return name
  if (url === "") return "(native)"
  if (url.startsWith("node:")) return "node internals"
  const modules = url.lastIndexOf("/node_modules/")
  if (modules >= 0) {
    const rest = url.slice(modules + "/node_modules/".length).split("/")
    return rest[0]?.startsWith("@") === true ? `${rest[0]}/${rest[1]}` : (rest[0] ?? url)
  }
  const packages = /\/(packages|apps|tooling)\/([^/]+)\//.exec(url)
  return packages === null ? url : `${packages[1]}/${packages[2]}`
}

const shortUrl = (url: string) => {
  const modules = url.lastIndexOf("/node_modules/")
  if (modules >= 0) return url.slice(modules + "/node_modules/".length)
  const ours = /\/((packages|apps|tooling)\/.*)$/.exec(url)
  return ours?.[1] ?? url
}

/** Source lines of our TypeScript files' positions (see the module comment). */
const makeLines = () => {
  const maps = new Map<string, Promise<SourceMap | undefined>>()
  const mapOf = (url: string) => {
    let map = maps.get(url)
    if (map === undefined) {
      const path = fileURLToPath(url)
      map = readFile(path, "utf8")
        .then((source) =>
          transform(source, {
            loader: "ts",
            format: "esm",
            target: `node${process.versions.node}`,
            sourcemap: "external",
            minifyWhitespace: true,
            keepNames: true,
            sourcefile: path
          })
        )
        .then((out) => new SourceMap(JSON.parse(out.map)))
        .catch(() => undefined)
      maps.set(url, map)
    }
    return map
  }
  return async (frame: ProfileNode["callFrame"]): Promise<number> => {
    const ours =
      frame.url.startsWith("file:") && frame.url.endsWith(".ts") && !frame.url.includes("/node_modules/")
    const map = ours ? await mapOf(frame.url) : undefined
    const entry = map?.findEntry(frame.lineNumber, frame.columnNumber)
    return entry !== undefined && "originalLine" in entry ? entry.originalLine + 1 : frame.lineNumber + 1
  }
}

interface Summary {
  readonly busy: number
  readonly requests: number
  readonly self: Map<string, number>
  readonly inclusive: Map<string, number>
  readonly where: Map<string, number>
}

const add = (map: Map<string, number>, key: string, value: number) =>
  map.set(key, (map.get(key) ?? 0) + value)

const summarize = async (
  profiles: ReadonlyArray<Profile>,
  runs: ReadonlyArray<Run>,
  lineOf: (frame: ProfileNode["callFrame"]) => Promise<number>
): Promise<Summary> => {
  const summary = {
    busy: 0,
    requests: runs.reduce((n, run) => n + run.requests, 0),
    self: new Map<string, number>(),
    inclusive: new Map<string, number>(),
    where: new Map<string, number>()
  }
  for (const profile of profiles) {
    const byId = new Map(profile.nodes.map((node) => [node.id, node]))
    const parent = new Map<number, number>()
    for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)
    const labels = new Map<number, string>()
    for (const node of profile.nodes) {
      const { functionName, url } = node.callFrame
      const name = functionName === "" ? "(anonymous)" : functionName
      labels.set(node.id, url === "" ? name : `${name} ${shortUrl(url)}:${await lineOf(node.callFrame)}`)
    }
    let at = profile.startTime
    for (const [index, id] of profile.samples.entries()) {
      const delta = profile.timeDeltas[index + 1] ?? 0
      at += profile.timeDeltas[index] ?? 0
      if (!runs.some((run) => at >= run.start && at < run.end)) continue
      const node = byId.get(id)
      if (node === undefined || node.callFrame.functionName === "(idle)") continue
      summary.busy += delta
      add(summary.where, whereOf(node.callFrame.url, node.callFrame.functionName), delta)
      add(summary.self, labels.get(id) ?? "?", delta)
      const seen = new Set<string>()
      for (let up: number | undefined = id; up !== undefined; up = parent.get(up)) {
        const label = labels.get(up)
        if (label === undefined || byId.get(up)?.callFrame.url === "" || seen.has(label)) continue
        seen.add(label)
        add(summary.inclusive, label, delta)
      }
    }
  }
  return summary
}

const table = (map: Map<string, number>, s: Summary, top: number) =>
  [...map]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(
      ([key, micros]) =>
        `  ${(micros / Math.max(1, s.requests)).toFixed(1).padStart(6)} us ${((100 * micros) / s.busy).toFixed(1).padStart(5)}%  ${key}`
    )
    .join("\n")

const profilesIn = async (dir: string) => {
  const files = (await readdir(dir)).filter((name) => name.endsWith(".cpuprofile"))
  return Promise.all(
    files.map(async (name) => JSON.parse(await readFile(join(dir, name), "utf8")) as Profile)
  )
}

/** The text of a profile folder's summary, one block per entry of its `windows.json`. */
export const profileSummary = async (dir: string, top = 25): Promise<string> => {
  const windows = JSON.parse(await readFile(join(dir, "windows.json"), "utf8")) as Windows
  const lineOf = makeLines()
  const blocks: Array<string> = []
  for (const [name, { profiles, runs }] of Object.entries(windows)) {
    const s = await summarize(await profilesIn(join(dir, profiles)), runs, lineOf)
    blocks.push(
      `== ${name}: ${(s.busy / Math.max(1, s.requests)).toFixed(1)} us of CPU per request (${s.requests} requests, every thread of the process; per request and % of the busy time)
by where the code lives (self time):
${table(s.where, s, 15)}
self time by function:
${table(s.self, s, top)}
total time (on the stack) by function:
${table(s.inclusive, s, top)}`
    )
  }
  return blocks.join("\n\n")
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const dir = process.argv[2]
  if (dir === undefined) throw new Error("usage: tsx bench/cpuProfile.ts <profile dir> [top]")
  console.log(await profileSummary(dir, Number(process.argv[3] ?? 25)))
}
