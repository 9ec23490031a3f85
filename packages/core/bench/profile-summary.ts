/**
 * Self time by function of a CPU profile of `bench/cache-hit.ts`, over the measured loops only: the
 * samples from the first to the last one with `opsPerSecond` on the stack (start-up, dev-idp's spawn
 * and module loading left out). Takes the busiest `.cpuprofile` of a directory (tsx's loader thread
 * writes one too).
 *
 *   BENCH_ONLY="Promise facade" node --cpu-prof --cpu-prof-dir=/tmp/prof-facade --import tsx bench/cache-hit.ts
 *   npx tsx bench/profile-summary.ts /tmp/prof-facade
 */
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"

interface ProfileNode {
  readonly id: number
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number }
  readonly children?: ReadonlyArray<number>
}
interface Profile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly samples: ReadonlyArray<number>
}

const dir = process.argv[2] ?? "/tmp/prof-facade"
const marker = process.argv[3] ?? "opsPerSecond"

/** The sample indexes of the measured loops, and the per-node "has the marker on its stack". */
const window = (profile: Profile) => {
  const parent = new Map<number, number>()
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const marked = new Map<number, boolean>()
  const isMarked = (id: number): boolean => {
    const known = marked.get(id)
    if (known !== undefined) return known
    const up = parent.get(id)
    const found = byId.get(id)?.callFrame.functionName === marker || (up !== undefined && isMarked(up))
    marked.set(id, found)
    return found
  }
  const hits = profile.samples.flatMap((id, i) => (isMarked(id) ? [i] : []))
  return { first: hits[0] ?? 0, last: hits.at(-1) ?? -1, byId }
}

const profiles = readdirSync(dir)
  .filter((file) => file.endsWith(".cpuprofile"))
  .map((file) => JSON.parse(readFileSync(join(dir, file), "utf8")) as Profile)
  .map((profile) => ({ profile, ...window(profile) }))
  .sort((a, b) => b.last - b.first - (a.last - a.first))
const busiest = profiles[0]
if (busiest === undefined || busiest.last < busiest.first)
  throw new Error(`no profile in ${dir} ran ${marker}`)

const self = new Map<string, number>()
const { profile, first, last, byId } = busiest
for (let i = first; i <= last; i++) {
  const frame = byId.get(profile.samples[i] ?? -1)?.callFrame
  if (frame === undefined) continue
  const where = frame.url === "" ? "" : ` ${frame.url.split("/").slice(-2).join("/")}:${frame.lineNumber + 1}`
  const name = `${frame.functionName === "" ? "(anonymous)" : frame.functionName}${where}`
  self.set(name, (self.get(name) ?? 0) + 1)
}
const total = last - first + 1
console.log(`${total} samples in the measured loops (${marker} on the stack from the first to the last)`)
for (const [name, samples] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 20)) {
  console.log(`${((100 * samples) / total).toFixed(1).padStart(5)} %  ${name}`)
}
