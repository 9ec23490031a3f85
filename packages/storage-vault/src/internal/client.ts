import { Clock, Duration, Effect, Redacted, Schedule, type Scope } from "effect"
import { Agent, fetch } from "undici"
import type { VaultConnectionOptions } from "../VaultConnection.js"
import { VaultError } from "../VaultError.js"
import { makeServerClock, type ServerClock } from "./serverClock.js"

export interface VaultResponse {
  readonly status: number
  readonly body: unknown
  /** Local clock when the request was sent and when its answer arrived. */
  readonly sentAt: number
  readonly receivedAt: number
}

export interface RequestOptions {
  readonly body?: unknown
  /** `?list=true` (Vault's LIST verb, spelled as a GET). */
  readonly list?: boolean | undefined
  /** Statuses (besides 2xx) that the caller handles itself, e.g. 404 for a missing secret, 400 for a cas mismatch. */
  readonly allow?: ReadonlyArray<number> | undefined
}

export interface VaultClient {
  readonly request: (
    method: "GET" | "POST" | "DELETE",
    path: string,
    options?: RequestOptions
  ) => Effect.Effect<VaultResponse, VaultError>
  readonly clock: ServerClock
}

/** Vault's `errors` array of an answer (empty when there is none). */
export const errorsOf = (body: unknown): ReadonlyArray<string> => {
  if (typeof body === "object" && body !== null && "errors" in body && Array.isArray(body.errors)) {
    return body.errors.filter((e): e is string => typeof e === "string")
  }
  return []
}

const secret = (value: string | Redacted.Redacted<string>): string =>
  typeof value === "string" ? value : Redacted.value(value)

const retryable = (e: VaultError) =>
  e.reason === "timeout" || e.reason === "unavailable" || e.reason === "sealed"

interface TokenState {
  token: string
  /** Local time the token expires; null when it never does (e.g. a root token). */
  expiresAt: number | null
  /** The TTL the token was given, to plan the next renewal. */
  ttlMs: number
  renewable: boolean
}

const authSchema = (body: unknown, path: string): Effect.Effect<TokenState, VaultError> => {
  const auth = (body as { auth?: unknown } | null)?.auth as
    | { client_token?: unknown; lease_duration?: unknown; renewable?: unknown }
    | undefined
  if (
    auth === undefined ||
    auth === null ||
    typeof auth.client_token !== "string" ||
    typeof auth.lease_duration !== "number" ||
    typeof auth.renewable !== "boolean"
  ) {
    return Effect.fail(
      new VaultError({
        reason: "invalid_response",
        path,
        message: `Vault's answer to ${path} has no valid "auth"`
      })
    )
  }
  const ttlMs = auth.lease_duration * 1000
  return Effect.map(Clock.currentTimeMillis, (now) => ({
    token: auth.client_token as string,
    expiresAt: ttlMs > 0 ? now + ttlMs : null,
    ttlMs,
    renewable: auth.renewable as boolean
  }))
}

/**
 * The HTTP client of one Vault connection: authentication (token or AppRole) with renewal in a scoped
 * background fiber, namespace header, custom CA, per-request timeout, retries of transient failures, and
 * the mapping of Vault's answers to `VaultError` reasons. Never puts a token or a body into an error.
 */
export const makeClient = (
  options: VaultConnectionOptions
): Effect.Effect<VaultClient, VaultError, Scope.Scope> =>
  Effect.gen(function* () {
    const address = options.address.replace(/\/+$/, "")
    const timeout = Duration.decode(options.timeout ?? Duration.seconds(5))
    const retries = Math.max(0, options.retries ?? 2)
    const dispatcher = yield* Effect.acquireRelease(
      Effect.sync(
        () =>
          new Agent({
            ...(options.caCert === undefined ? {} : { connect: { ca: options.caCert } }),
            keepAliveTimeout: 4_000
          })
      ),
      (agent) => Effect.promise(() => agent.close()).pipe(Effect.ignore)
    )
    const clock = makeServerClock()
    const auth = options.auth
    const state: TokenState = {
      token: "token" in auth ? secret(auth.token) : "",
      expiresAt: null,
      ttlMs: 0,
      renewable: false
    }

    const toError = (path: string, status: number, body: unknown, now: number): VaultError => {
      const errors = errorsOf(body)
      const said = errors.length === 0 ? "" : `: ${errors.join("; ").replace(/\s+/g, " ").trim()}`
      if (status === 503 && errors.some((e) => /sealed/i.test(e))) {
        return new VaultError({ reason: "sealed", path, status, message: `Vault is sealed (${path})` })
      }
      if (status === 501) {
        return new VaultError({
          reason: "sealed",
          path,
          status,
          message: `Vault is not initialized (${path})`
        })
      }
      if (status === 403) {
        const expired =
          errors.some((e) => /invalid token|token.*expired/i.test(e)) ||
          (state.expiresAt !== null && state.expiresAt <= now)
        return expired
          ? new VaultError({
              reason: "token_expired",
              path,
              status,
              message: `Vault refused the token: it expired or was revoked (${path})`
            })
          : new VaultError({
              reason: "permission_denied",
              path,
              status,
              message: `Vault denied permission at ${path}: the token's policy does not allow this request`
            })
      }
      if (status === 404 && errors.some((e) => /no handler for route/i.test(e))) {
        return new VaultError({
          reason: "mount_missing",
          path,
          status,
          message: `No secrets engine is mounted at the start of ${path} (Vault: no handler for route)`
        })
      }
      if (status >= 500 || status === 429 || status === 412) {
        return new VaultError({
          reason: "unavailable",
          path,
          status,
          message: `Vault answered ${status}${said}`
        })
      }
      return new VaultError({
        reason: "invalid_response",
        path,
        status,
        message: `Vault answered ${status} to ${path}${said}`
      })
    }

    const once = (
      method: string,
      path: string,
      requestOptions: RequestOptions,
      token: string | null
    ): Effect.Effect<VaultResponse, VaultError> =>
      Effect.gen(function* () {
        const url = `${address}/v1/${path}${requestOptions.list === true ? "?list=true" : ""}`
        const headers: Record<string, string> = {}
        if (token !== null && token !== "") headers["X-Vault-Token"] = token
        if (options.namespace !== undefined) headers["X-Vault-Namespace"] = options.namespace
        if (requestOptions.body !== undefined) headers["Content-Type"] = "application/json"
        const sentAt = yield* Clock.currentTimeMillis
        const answer = yield* Effect.tryPromise({
          try: async (signal) => {
            const response = await fetch(url, {
              method,
              headers,
              signal,
              dispatcher,
              ...(requestOptions.body === undefined ? {} : { body: JSON.stringify(requestOptions.body) })
            })
            return {
              status: response.status,
              date: response.headers.get("date"),
              text: await response.text()
            }
          },
          catch: (error) => {
            const cause = (error as { cause?: { code?: unknown; message?: unknown } } | null)?.cause
            const code = typeof cause?.code === "string" ? cause.code : undefined
            const detail = code ?? (error instanceof Error ? error.message : "request failed")
            return new VaultError({
              reason: "unavailable",
              path,
              message: `Vault at ${address} could not be reached (${detail})`
            })
          }
        }).pipe(
          Effect.timeoutFail({
            duration: timeout,
            onTimeout: () =>
              new VaultError({
                reason: "timeout",
                path,
                message: `Vault did not answer ${method} ${path} within ${Duration.format(timeout)}`
              })
          })
        )
        const receivedAt = yield* Clock.currentTimeMillis
        if (answer.date !== null) clock.observe(Date.parse(answer.date), 1000, sentAt, receivedAt)
        let body: unknown = null
        if (answer.text !== "") {
          try {
            body = JSON.parse(answer.text)
          } catch {
            return yield* new VaultError({
              reason: "invalid_response",
              path,
              status: answer.status,
              message: `Vault answered ${answer.status} to ${path} with a body that is not JSON`
            })
          }
        }
        const ok = answer.status >= 200 && answer.status < 300
        const noRoute = answer.status === 404 && errorsOf(body).some((e) => /no handler for route/i.test(e))
        if ((ok || requestOptions.allow?.includes(answer.status) === true) && !noRoute) {
          return { status: answer.status, body, sentAt, receivedAt }
        }
        return yield* Effect.fail(toError(path, answer.status, body, receivedAt))
      })

    const withRetries = <A>(effect: Effect.Effect<A, VaultError>) =>
      effect.pipe(
        Effect.retry({
          times: retries,
          while: retryable,
          schedule: Schedule.exponential(Duration.millis(100), 2)
        })
      )

    const appRoleLogin: Effect.Effect<void, VaultError> = Effect.gen(function* () {
      if (!("appRole" in auth)) return
      const mount = auth.appRole.mount ?? "approle"
      const path = `auth/${mount}/login`
      const response = yield* withRetries(
        once(
          "POST",
          path,
          { body: { role_id: auth.appRole.roleId, secret_id: secret(auth.appRole.secretId) }, allow: [400] },
          null
        )
      )
      if (response.status === 400) {
        return yield* new VaultError({
          reason: "permission_denied",
          path,
          status: 400,
          message: `Vault refused the AppRole login at ${path}: ${errorsOf(response.body).join("; ") || "invalid role or secret ID"}`
        })
      }
      Object.assign(state, yield* authSchema(response.body, path))
    })

    const lookupSelf: Effect.Effect<void, VaultError> = Effect.gen(function* () {
      const path = "auth/token/lookup-self"
      const response = yield* withRetries(once("GET", path, {}, state.token))
      const data = (response.body as { data?: { ttl?: unknown; renewable?: unknown } } | null)?.data
      if (typeof data?.ttl !== "number") {
        return yield* new VaultError({
          reason: "invalid_response",
          path,
          message: `Vault's answer to ${path} has no "data.ttl"`
        })
      }
      const ttlMs = data.ttl * 1000
      state.ttlMs = ttlMs
      state.expiresAt = ttlMs > 0 ? response.receivedAt + ttlMs : null
      state.renewable = data.renewable === true
    })

    const renewSelf: Effect.Effect<void, VaultError> = Effect.gen(function* () {
      const path = "auth/token/renew-self"
      const response = yield* once("POST", path, { body: {} }, state.token)
      const renewed = yield* authSchema(response.body, path)
      state.expiresAt = renewed.expiresAt
      state.ttlMs = renewed.ttlMs
      state.renewable = renewed.renewable
    })

    if ("appRole" in auth) yield* appRoleLogin
    else yield* lookupSelf

    /**
     * One renewal: renew-self when the token is renewable; AppRole logs in again instead when renewal is
     * refused or when the token is close to its max TTL (renewal no longer extends it much).
     */
    const refreshToken: Effect.Effect<void, VaultError | "not renewable"> = Effect.suspend(() => {
      const isAppRole = "appRole" in auth
      const before = state.ttlMs
      const renew: Effect.Effect<void, VaultError | "not renewable"> = state.renewable
        ? renewSelf
        : Effect.fail("not renewable" as const)
      if (!isAppRole) return renew
      return renew.pipe(
        Effect.flatMap(() => (state.ttlMs < before / 3 ? appRoleLogin : Effect.void)),
        Effect.catchAll(() => appRoleLogin)
      )
    })

    /** Renews the token when two thirds of its life have passed; failures are tried again soon. */
    const keepTokenAlive: Effect.Effect<void> = Effect.gen(function* () {
      for (;;) {
        const now = yield* Clock.currentTimeMillis
        if (state.expiresAt === null) return
        const due = state.expiresAt - state.ttlMs / 3
        yield* Effect.sleep(Duration.millis(Math.max(50, due - now)))
        const refreshed = yield* Effect.either(refreshToken)
        if (refreshed._tag === "Left") {
          if (refreshed.left === "not renewable") return
          // requests report token_expired once it is gone
          yield* Effect.sleep(Duration.millis(Math.max(50, Math.min(1_000, state.ttlMs / 10))))
        }
      }
    })
    yield* Effect.forkScoped(keepTokenAlive)

    const request: VaultClient["request"] = (method, path, requestOptions = {}) =>
      withRetries(Effect.suspend(() => once(method, path, requestOptions, state.token))).pipe(
        Effect.catchIf(
          (e) => e.reason === "token_expired" && "appRole" in auth,
          () =>
            Effect.zipRight(
              appRoleLogin,
              withRetries(Effect.suspend(() => once(method, path, requestOptions, state.token)))
            )
        )
      )

    return { request, clock }
  })
