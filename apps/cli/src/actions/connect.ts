/** `token-broker connect`: consent in the browser for one subject and provider, received on a loopback callback, then the grant stored. */
import { spawn } from "node:child_process"
import { createServer, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { TokenBroker } from "@token-broker/core"
import { Deferred, Duration, Effect, Either } from "effect"
import escapeHtml from "escape-html"
import { loadCliConfig, requestedScopes, withBroker } from "../internal/Broker.js"
import { CliEnvironment } from "../internal/Environment.js"
import { type CliFailure, fromBrokerError, operationFailed, usageError } from "../internal/Failure.js"
import type { TokenRequest } from "../internal/Options.js"
import { printJson, printLine, printNote } from "../internal/Output.js"

const CALLBACK_PATH = "/callback"

interface Callback {
  readonly url: URL
  readonly respond: (status: number, title: string, text: string) => void
}

const page = (title: string, text: string) =>
  `<!doctype html><html lang="en"><meta charset="utf-8"><title>${escapeHtml(title)}</title><body style="font-family:sans-serif;margin:3em"><h1>${escapeHtml(title)}</h1><p>${escapeHtml(text)}</p></body></html>`

/** The loopback server (RFC 8252 section 7.3): the first request to /callback completes `received`. */
const loopbackServer = (host: string, port: number, received: Deferred.Deferred<Callback>) =>
  Effect.acquireRelease(
    Effect.async<{ readonly port: number; readonly close: () => void }, CliFailure>((resume) => {
      let handled = false
      const server = createServer((req, res: ServerResponse) => {
        const url = new URL(req.url ?? "/", `http://${req.headers.host ?? host}`)
        if (req.method !== "GET" || url.pathname !== CALLBACK_PATH) {
          res.writeHead(404, { "content-type": "text/plain" }).end("not found\n")
          return
        }
        const respond = (status: number, title: string, text: string) =>
          res
            .writeHead(status, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" })
            .end(page(title, text))
        if (handled) {
          respond(409, "Already handled", "This consent was already received; you can close this window.")
          return
        }
        handled = true
        Deferred.unsafeDone(received, Effect.succeed({ url, respond }))
      })
      server.once("error", (error: NodeJS.ErrnoException) =>
        resume(
          Effect.fail(
            usageError(
              `cannot listen on ${host}:${port} (${error.code ?? "error"})`,
              "choose another --port, or --host 127.0.0.1"
            )
          )
        )
      )
      server.listen(port, host, () =>
        resume(
          Effect.succeed({
            port: (server.address() as AddressInfo).port,
            close: () => {
              server.close()
              server.closeAllConnections()
            }
          })
        )
      )
    }),
    (server) => Effect.sync(server.close)
  )

/** Opens the URL in the desktop's browser; any failure is ignored (the URL is printed anyway). */
const openBrowser = (url: string) =>
  Effect.sync(() => {
    const [command, args] =
      process.platform === "darwin"
        ? ["open", [url]]
        : process.platform === "win32"
          ? ["cmd", ["/c", "start", '""', url]]
          : ["xdg-open", [url]]
    try {
      const child = spawn(command, args, { stdio: "ignore", detached: true })
      child.on("error", () => undefined)
      child.unref()
    } catch {
      // no browser here: the printed URL is the way
    }
  })

export const connect = (
  args: TokenRequest & {
    readonly host: string
    readonly port: number
    readonly browser: boolean
    readonly timeoutSeconds: number
  }
): Effect.Effect<void, CliFailure, CliEnvironment> =>
  Effect.scoped(
    Effect.gen(function* () {
      const env = yield* CliEnvironment
      if (args.port < 0 || args.port > 65_535) return yield* usageError("--port must be from 0 to 65535")
      if (args.timeoutSeconds < 1) return yield* usageError("--timeout must be at least 1 second")
      const config = yield* loadCliConfig(args.path)
      if (!config.providers.some((p) => p.id === args.provider)) {
        return yield* usageError(
          `Provider "${args.provider}" is not in the config (providers: ${config.providers.map((p) => p.id).join(", ")})`
        )
      }
      const received = yield* Deferred.make<Callback>()
      const server = yield* loopbackServer(args.host, args.port, received)
      const hostPart = args.host.includes(":") ? `[${args.host}]` : args.host
      const redirectUri = `http://${hostPart}:${server.port}${CALLBACK_PATH}`
      // this consent comes back to the loopback server, not to the broker's /connect/callback
      const local = {
        ...config,
        providers: config.providers.map((p) => (p.id === args.provider ? { ...p, redirectUri } : p))
      }
      const outcome = yield* withBroker(
        local,
        Effect.gen(function* () {
          const broker = yield* TokenBroker.TokenBroker
          const started = yield* broker
            .startAuthorization({
              tenant: args.tenant,
              subject: args.subject,
              provider: args.provider,
              scopes: requestedScopes(args.scopes)
            })
            .pipe(Effect.mapError(fromBrokerError))
          const url = started.authorizationUrl.toString()
          yield* printNote(
            `To connect ${args.subject} to ${args.provider}, open this URL in a browser and consent:`
          )
          yield* printNote("")
          yield* printNote(`  ${url}`)
          yield* printNote("")
          yield* printNote(`Waiting for the callback on ${redirectUri} (Ctrl-C to give up) ...`)
          if (args.browser && env.stdoutIsTTY && env.stdinIsTTY) yield* openBrowser(url)
          const callback = yield* Deferred.await(received).pipe(
            Effect.timeoutFail({
              duration: Duration.seconds(args.timeoutSeconds),
              onTimeout: () =>
                operationFailed(
                  `No consent arrived within ${args.timeoutSeconds} seconds`,
                  "run connect again"
                )
            })
          )
          const completed = yield* Effect.either(broker.completeAuthorization(callback.url))
          if (Either.isRight(completed)) {
            callback.respond(
              200,
              "Connected",
              `${args.subject} is connected to ${args.provider}. You can close this window.`
            )
          } else {
            callback.respond(400, "Not connected", completed.left.message)
          }
          return completed
        })
      )
      if (Either.isLeft(outcome)) return yield* fromBrokerError(outcome.left)
      const grant = outcome.right.grant
      if (args.json) return yield* printJson(grant)
      yield* printLine(
        `Connected ${grant.subject} to ${grant.provider} (grant version ${grant.version}, scopes: ${grant.scopes.join(" ")})`
      )
    })
  )
