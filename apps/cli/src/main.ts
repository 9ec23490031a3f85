/**
 * The whole CLI, loaded by the `token-broker` executable (`bin.ts`) for every command but the bare help:
 * with `bin.ts`, the only place that reads process.env, argv and the terminal state.
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeTerminal from "@effect/platform-node/NodeTerminal"
import { Effect, Exit, Layer } from "effect"
import { run, withPlainConsole } from "./Cli.js"
import { CliEnvironment, colorFor } from "./internal/Environment.js"

const env = { ...process.env }
const stdoutIsTTY = process.stdout.isTTY === true
const stderrIsTTY = process.stderr.isTTY === true

const environment = Layer.succeed(CliEnvironment, {
  env,
  cwd: process.cwd(),
  stdinIsTTY: process.stdin.isTTY === true,
  stdoutIsTTY,
  stderrIsTTY,
  colorStdout: colorFor(stdoutIsTTY, env),
  colorStderr: colorFor(stderrIsTTY, env),
  writeStdout: (text) => {
    process.stdout.write(text)
  },
  writeStderr: (text) => {
    process.stderr.write(text)
  },
  readStdin: async () => {
    const chunks: Array<Buffer> = []
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
    return Buffer.concat(chunks).toString("utf8")
  }
})

const platform = Layer.mergeAll(NodeFileSystem.layer, NodePath.layer, NodeTerminal.layer)

// a closed pipe (token-broker token | head -c0) is not an error of ours
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE") process.exit(0)
})

NodeRuntime.runMain(
  withPlainConsole(run(process.argv)).pipe(Effect.provide(Layer.merge(environment, platform))),
  {
    disableErrorReporting: true,
    teardown: (exit, onExit) => {
      const code = Exit.isSuccess(exit) && typeof exit.value === "number" ? exit.value : 130
      // flush both streams before leaving: open sockets (HTTP keep-alive) must not keep the CLI alive
      process.stdout.write("", () => process.stderr.write("", () => onExit(code)))
    }
  }
)
