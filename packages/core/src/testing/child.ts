/**
 * Entry point of a conformance-suite child process: builds the store named on the command line and
 * answers one JSON command per stdin line with one JSON line on stdout (see `protocol.ts`).
 *
 * argv: <module URL> <export name> <JSON options>
 */
import { createInterface } from "node:readline"
import { Cause, Duration, Effect, Exit, type Layer, ManagedRuntime, Option } from "effect"
import { GrantStore, type GrantStoreDriver, withLease } from "../GrantStore.js"
import type { ChildCommand, ChildMessage } from "./protocol.js"

const send = (message: ChildMessage): void => {
  process.stdout.write(`${JSON.stringify(message)}\n`)
}

const run = (driver: GrantStoreDriver, command: ChildCommand): Effect.Effect<unknown, unknown> => {
  switch (command.op) {
    case "acquire":
      return driver.acquireLease(command.name, command.owner, Duration.millis(command.ttlMs))
    case "renew":
      return driver.renewLease(command.name, command.owner, Duration.millis(command.ttlMs))
    case "release":
      return driver.releaseLease(command.name, command.owner)
    case "incrementUnderLease": {
      const once = withLease(
        driver,
        command.name,
        command.owner,
        { ttl: Duration.millis(command.ttlMs), wait: Duration.seconds(30) },
        Effect.gen(function* () {
          const current = Option.getOrThrow(yield* driver.get(command.key))
          yield* Effect.sleep(Duration.millis(command.holdMs))
          return yield* driver.compareAndSet(command.key, current.version, {
            ...current,
            version: current.version + 1
          })
        })
      )
      return Effect.gen(function* () {
        let conflicts = 0
        for (let i = 0; i < command.iterations; i++) {
          if ((yield* once) === "conflict") conflicts++
        }
        return { conflicts }
      })
    }
  }
}

const main = async (): Promise<void> => {
  const [moduleUrl, exportName, optionsJson] = process.argv.slice(2)
  if (moduleUrl === undefined || exportName === undefined || optionsJson === undefined) {
    send({ fatal: "usage: child.ts <module URL> <export name> <JSON options>" })
    process.exit(2)
  }
  const mod = (await import(moduleUrl)) as Record<string, unknown>
  // a dotted path reaches into namespace exports: "SqliteGrantStore.layer"
  const factory = exportName
    .split(".")
    .reduce<unknown>((value, part) => (value as Record<string, unknown> | undefined)?.[part], mod)
  if (typeof factory !== "function") {
    send({ fatal: `${moduleUrl} has no function export "${exportName}"` })
    process.exit(2)
  }
  const layer = factory(JSON.parse(optionsJson)) as Layer.Layer<GrantStore, unknown>
  const runtime = ManagedRuntime.make(layer)
  const built = await runtime.runPromiseExit(GrantStore)
  if (Exit.isFailure(built)) {
    send({ fatal: `building the store failed: ${Cause.pretty(built.cause)}` })
    process.exit(1)
  }
  const driver = built.value
  send({ ready: true })
  const lines = createInterface({ input: process.stdin })
  lines.on("line", (line) => {
    const { id, command } = JSON.parse(line) as { id: number; command: ChildCommand }
    void runtime
      .runPromiseExit(run(driver, command))
      .then((exit) =>
        send(
          Exit.isSuccess(exit) ? { id, value: exit.value ?? null } : { id, error: Cause.pretty(exit.cause) }
        )
      )
  })
  lines.on("close", () => {
    void runtime.dispose().then(() => process.exit(0))
  })
}

void main()
