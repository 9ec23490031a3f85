/** What dev-idp saw happen, in order, for tests to read back (`list`) and reset (`clear`). */
export class RecordLog<T> {
  #records: T[] = []

  record(entry: T): void {
    this.#records.push(entry)
  }

  list(): ReadonlyArray<T> {
    return [...this.#records]
  }

  clear(): void {
    this.#records = []
  }
}
