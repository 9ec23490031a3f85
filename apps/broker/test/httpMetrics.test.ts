import { describe, expect, it } from "vitest"
import { makeHttpMetrics } from "../src/Metrics.js"

describe("the HTTP request metrics", () => {
  it("count requests by method, route and status, with a cumulative duration histogram", async () => {
    const metrics = makeHttpMetrics()
    const route = "/v1/grants/:subject/:provider/token"
    metrics.observe("POST", route, 200, 0.0004)
    metrics.observe("POST", route, 200, 0.003)
    metrics.observe("POST", route, 200, 12)
    metrics.observe("GET", "unmatched", 404, 0.001)
    const text = await metrics.render([])
    const labels = `method="POST",route="${route}",status_code="200"`
    expect(text).toContain("# TYPE http_requests_total counter")
    expect(text).toContain(`http_requests_total{${labels}} 3\n`)
    expect(text).toContain(`http_requests_total{method="GET",route="unmatched",status_code="404"} 1\n`)
    expect(text).toContain("# TYPE http_request_duration_seconds histogram")
    const bucket = (le: string) => {
      const line = text
        .split("\n")
        .find((l) => l.startsWith(`http_request_duration_seconds_bucket{le="${le}",${labels}}`))
      return Number(line?.split(" ").at(-1))
    }
    expect([bucket("0.0005"), bucket("0.001"), bucket("0.005"), bucket("10"), bucket("+Inf")]).toEqual([
      1, 1, 2, 2, 3
    ])
    // a bound is inclusive, as in Prometheus
    expect(text).toContain(
      'http_request_duration_seconds_bucket{le="0.001",method="GET",route="unmatched",status_code="404"} 1\n'
    )
    expect(text).toContain(`http_request_duration_seconds_sum{${labels}} 12.0034\n`)
    expect(text).toContain(`http_request_duration_seconds_count{${labels}} 3\n`)
    // the process's default metrics are still there
    expect(text).toContain("# TYPE process_cpu_seconds_total counter")
  })
})
