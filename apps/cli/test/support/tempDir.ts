import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll } from "vitest"

/**
 * A fresh directory for the enclosing describe block, made before its tests and removed after them.
 * Returns a getter: the path exists only once the block's beforeAll has run.
 */
export const temporaryDirectory = (prefix: string): (() => string) => {
  let dir: string | undefined
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), prefix))
  })
  afterAll(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })
  return () => {
    if (dir === undefined) throw new Error(`${prefix}: used outside its describe block's tests`)
    return dir
  }
}
