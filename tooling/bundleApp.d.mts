// Types of bundleApp.mjs for the TypeScript that imports it (the apps' benchmarks).
import type { BuildOptions } from "esbuild"

type Build = (options: BuildOptions) => Promise<unknown>

export declare const bundleApp: (
  build: Build,
  appDir: URL,
  app: {
    entryPoints: Record<string, string>
    executable: string
    minify?: boolean
    external?: ReadonlyArray<string>
  }
) => Promise<void>

export declare const bundleScript: (build: Build, entry: string, outfile: string) => Promise<void>
