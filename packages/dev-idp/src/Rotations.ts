import { RecordLog } from "./internal/RecordLog.js"

/** One refresh that rotated a refresh token (the provider issued a successor), whatever answer followed. */
export interface RotationRecord {
  /** The `sub` of the grant's user. */
  readonly subject: string
  readonly clientId: string
  /** Epoch milliseconds. */
  readonly at: number
}

/**
 * The record of rotations, counted when the provider issued the successor - also when an `after_commit`
 * fault then spoils or drops the answer - so tests can count refreshes per grant that really happened.
 */
export class Rotations extends RecordLog<RotationRecord> {}
