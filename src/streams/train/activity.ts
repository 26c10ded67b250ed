import type { FinalAggregateRow } from "../../domain/rows.js"

/** Window lengths of the past-activity features, in microseconds. */
export const activityWindows = {
  userShortMicros: 3_600_000_000,
  userLongMicros: 86_400_000_000,
  deviceMicros: 86_400_000_000,
  /** How long a device stays "known" for a user after its last use. */
  knownDeviceMicros: 30 * 86_400_000_000
} as const

/** The facts about a transaction the activity tracker reads. */
export type ActivityKey = Pick<FinalAggregateRow, "user_id" | "device_id" | "first_event_time">

/**
 * What happened before a transaction, from earlier transactions only: a transaction at time t counts
 * the others of its user or device with a time in [t − window, t), never itself, one at the same
 * instant or anything later, so the features cannot see the future.
 */
export interface PastActivity {
  readonly user_txn_1h: number
  readonly user_txn_24h: number
  /** 0 when the transaction has no device_id. */
  readonly device_txn_24h: number
  /** The user used this device within the 30 days before; false when there is no device_id. */
  readonly device_known_for_user: boolean
}

/** Insertion into an ascending array, keeping it ascending (online arrivals may be out of order). */
const insertSorted = (times: Array<number>, time: number): void => {
  let position = times.length
  while (position > 0 && (times[position - 1] as number) > time) position--
  times.splice(position, 0, time)
}

/** How many entries of an ascending array lie in [from, to). */
const countInRange = (times: ReadonlyArray<number>, from: number, to: number): number => {
  const lowerBound = (value: number) => {
    let low = 0
    let high = times.length
    while (low < high) {
      const middle = (low + high) >>> 1
      if ((times[middle] as number) < value) low = middle + 1
      else high = middle
    }
    return low
  }
  return lowerBound(to) - lowerBound(from)
}

interface DeviceUse {
  first: number
  last: number
}

/**
 * Per-user and per-device transaction times, used the same way offline (rows in time order) and in the
 * stream (transactions as they are first seen). {@link evictBefore} drops what no window can reach, so
 * memory is bounded by the activity of the last 30 days.
 */
export class ActivityTracker {
  private readonly users = new Map<string, Array<number>>()
  private readonly devices = new Map<string, Array<number>>()
  private readonly userDevices = new Map<string, DeviceUse>()

  /** The past activity of a transaction, then records it for the ones after it. */
  observe(key: ActivityKey): PastActivity {
    const activity = this.activityAt(key)
    this.record(key)
    return activity
  }

  /** The past activity of a transaction without recording it. */
  activityAt(key: ActivityKey): PastActivity {
    const time = key.first_event_time
    const userTimes = this.users.get(key.user_id) ?? []
    return {
      user_txn_1h: countInRange(userTimes, time - activityWindows.userShortMicros, time),
      user_txn_24h: countInRange(userTimes, time - activityWindows.userLongMicros, time),
      device_txn_24h:
        key.device_id === null
          ? 0
          : countInRange(this.devices.get(key.device_id) ?? [], time - activityWindows.deviceMicros, time),
      device_known_for_user: key.device_id !== null && this.knownDevice(key.user_id, key.device_id, time)
    }
  }

  /** Records a transaction for the ones after it. */
  record(key: ActivityKey): void {
    const time = key.first_event_time
    const userTimes = this.users.get(key.user_id) ?? []
    insertSorted(userTimes, time)
    this.users.set(key.user_id, userTimes)
    if (key.device_id !== null) {
      const deviceTimes = this.devices.get(key.device_id) ?? []
      insertSorted(deviceTimes, time)
      this.devices.set(key.device_id, deviceTimes)
      const pair = `${key.user_id}\u0000${key.device_id}`
      const use = this.userDevices.get(pair)
      if (use === undefined) this.userDevices.set(pair, { first: time, last: time })
      else {
        use.first = Math.min(use.first, time)
        use.last = Math.max(use.last, time)
      }
    }
  }

  private knownDevice(userId: string, deviceId: string, time: number): boolean {
    const use = this.userDevices.get(`${userId}\u0000${deviceId}`)
    return use !== undefined && use.first < time && use.last >= time - activityWindows.knownDeviceMicros
  }

  /** Forgets times no window starting at or after `time` can count. */
  evictBefore(time: number): void {
    const prune = (map: Map<string, Array<number>>, horizon: number) => {
      for (const [key, times] of map) {
        let drop = 0
        while (drop < times.length && (times[drop] as number) < horizon) drop++
        if (drop === times.length) map.delete(key)
        else if (drop > 0) times.splice(0, drop)
      }
    }
    prune(this.users, time - activityWindows.userLongMicros)
    prune(this.devices, time - activityWindows.deviceMicros)
    const deviceHorizon = time - activityWindows.knownDeviceMicros
    for (const [pair, use] of this.userDevices) if (use.last < deviceHorizon) this.userDevices.delete(pair)
  }

  /** Tracked keys (users, devices, user-device pairs): the state size. */
  get size(): number {
    return this.users.size + this.devices.size + this.userDevices.size
  }
}
