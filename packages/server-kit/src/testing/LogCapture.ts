import { Writable } from "node:stream"

/** A server's log lines captured in memory, for the tests that scan them (secrets, levels, refusals). */
export class LogCapture extends Writable {
  readonly chunks: Array<string> = []
  override _write(chunk: Buffer | string, _encoding: BufferEncoding, callback: () => void) {
    this.chunks.push(chunk.toString())
    callback()
  }
  text(): string {
    return this.chunks.join("")
  }
}
