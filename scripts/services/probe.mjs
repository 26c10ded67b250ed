// Health probes for scripts/services.sh. Exit 0 when the service really answers, 1 otherwise
// (the reason goes to stderr). Usage:
//   node probe.mjs kafka <host> <port>   ApiVersions, then a Metadata request that must list a broker
//   node probe.mjs kafka-warm <host> <port> <seconds> <offsets partitions>
//                                        until the group coordinator of every __consumer_offsets partition
//                                        answers and an idempotent producer id is granted, so clients do not meet a freshly started broker's
//                                        retriable COORDINATOR_LOAD_IN_PROGRESS / COORDINATOR_NOT_AVAILABLE
//   node probe.mjs http <url>            any HTTP response (S3 server, dynalite)

import http from "node:http"
import net from "node:net"

const TIMEOUT_MS = 3000
const API_METADATA = 3
const API_FIND_COORDINATOR = 10
const API_INIT_PRODUCER_ID = 22
const API_API_VERSIONS = 18

const encodeRequest = (apiKey, apiVersion, correlationId, body) => {
  const clientId = Buffer.from("recon-services-probe")
  const header = Buffer.alloc(10)
  header.writeInt16BE(apiKey, 0)
  header.writeInt16BE(apiVersion, 2)
  header.writeInt32BE(correlationId, 4)
  header.writeInt16BE(clientId.length, 8)
  const payload = Buffer.concat([header, clientId, body])
  const size = Buffer.alloc(4)
  size.writeInt32BE(payload.length, 0)
  return Buffer.concat([size, payload])
}

/** One request/response exchange on an open socket; resolves with the response body after the correlation id. */
const exchange = (socket, request) =>
  new Promise((resolve, reject) => {
    let received = Buffer.alloc(0)
    const onData = (chunk) => {
      received = Buffer.concat([received, chunk])
      if (received.length < 4) return
      const size = received.readInt32BE(0)
      if (received.length < 4 + size) return
      socket.off("data", onData)
      socket.off("error", reject)
      resolve(received.subarray(8, 4 + size))
    }
    socket.on("data", onData)
    socket.once("error", reject)
    socket.write(request)
  })

const connect = async (host, port) => {
  const socket = net.connect({ host, port: Number(port) })
  socket.setTimeout(TIMEOUT_MS, () => socket.destroy(new Error("timed out")))
  await new Promise((resolve, reject) => {
    socket.once("connect", resolve)
    socket.once("error", reject)
  })
  return socket
}

/** The broker's supported [min, max] version per API key, from ApiVersions v0. */
const apiVersions = async (socket) => {
  const response = await exchange(socket, encodeRequest(API_API_VERSIONS, 0, 1, Buffer.alloc(0)))
  const errorCode = response.readInt16BE(0)
  if (errorCode !== 0) throw new Error(`ApiVersions error code ${errorCode}`)
  const ranges = new Map()
  const count = response.readInt32BE(2)
  for (let i = 0; i < count; i++) {
    const at = 6 + i * 6
    ranges.set(response.readInt16BE(at), [response.readInt16BE(at + 2), response.readInt16BE(at + 4)])
  }
  return ranges
}

/** Highest version the broker supports within [low, high]: a span of non-flexible versions sharing one layout. */
const pickVersion = (ranges, apiKey, low, high) => {
  const range = ranges.get(apiKey)
  if (!range) throw new Error(`broker does not offer API ${apiKey}`)
  const version = Math.min(high, range[1])
  if (version < Math.max(low, range[0])) {
    throw new Error(`API ${apiKey}: no version in ${low}..${high} (broker offers ${range.join("..")})`)
  }
  return version
}

const probeKafka = async (host, port) => {
  const socket = await connect(host, port)
  try {
    const version = pickVersion(await apiVersions(socket), API_METADATA, 4, 8)
    const body = Buffer.alloc(version >= 8 ? 7 : 5)
    body.writeInt32BE(0, 0) // no topics: brokers only
    body.writeInt8(0, 4) // allow_auto_topic_creation
    const metadata = await exchange(socket, encodeRequest(API_METADATA, version, 2, body))
    const brokers = metadata.readInt32BE(4)
    if (brokers < 1) throw new Error("Metadata lists no broker yet")
    const hostLength = metadata.readInt16BE(12)
    const brokerHost = metadata.subarray(14, 14 + hostLength).toString()
    const brokerPort = metadata.readInt32BE(14 + hostLength)
    return `Metadata v${version}: ${brokers} broker(s), first ${brokerHost}:${brokerPort}`
  } finally {
    socket.destroy()
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Kafka's Utils.abs(groupId.hashCode()) % partitions: the __consumer_offsets partition of a group. */
const groupPartition = (groupId, partitions) => {
  let hash = 0
  for (let i = 0; i < groupId.length; i++) hash = (Math.imul(hash, 31) + groupId.charCodeAt(i)) | 0
  return (hash & 0x7fffffff) % partitions
}

/** One group id per __consumer_offsets partition. */
const groupPerPartition = (partitions) => {
  const groups = new Map()
  for (let i = 0; groups.size < partitions; i++) {
    const group = `recon-services-warmup-${i}`
    const partition = groupPartition(group, partitions)
    if (!groups.has(partition)) groups.set(partition, group)
  }
  return [...groups.values()]
}

const findCoordinatorBody = (groupId) => {
  const group = Buffer.from(groupId)
  const body = Buffer.alloc(2 + group.length + 1)
  body.writeInt16BE(group.length, 0)
  group.copy(body, 2)
  body.writeInt8(0, 2 + group.length) // key_type: group
  return body
}

const warmKafka = async (host, port, seconds, offsetsPartitions) => {
  const deadline = Date.now() + Number(seconds) * 1000
  const socket = await connect(host, port)
  try {
    const ranges = await apiVersions(socket)
    const findVersion = pickVersion(ranges, API_FIND_COORDINATOR, 1, 2)
    const initVersion = pickVersion(ranges, API_INIT_PRODUCER_ID, 0, 1)
    const initBody = Buffer.alloc(6)
    initBody.writeInt16BE(-1, 0) // no transactional id: idempotent producer
    initBody.writeInt32BE(60000, 2)
    let correlationId = 10
    const untilNoError = async (label, apiKey, version, body) => {
      for (;;) {
        const response = await exchange(socket, encodeRequest(apiKey, version, correlationId++, body))
        const errorCode = response.readInt16BE(4)
        if (errorCode === 0) return
        if (Date.now() > deadline) throw new Error(`${label} still answers error code ${errorCode}`)
        await sleep(200)
      }
    }
    for (const group of groupPerPartition(Number(offsetsPartitions))) {
      await untilNoError(
        `FindCoordinator(${group})`,
        API_FIND_COORDINATOR,
        findVersion,
        findCoordinatorBody(group)
      )
    }
    await untilNoError("InitProducerId", API_INIT_PRODUCER_ID, initVersion, initBody)
    return "group coordinators and producer ids ready"
  } finally {
    socket.destroy()
  }
}

const probeHttp = (url) =>
  new Promise((resolve, reject) => {
    const request = http.get(url, { timeout: TIMEOUT_MS }, (response) => {
      response.resume()
      resolve(`HTTP ${response.statusCode}`)
    })
    request.once("timeout", () => request.destroy(new Error("timed out")))
    request.once("error", reject)
  })

const [kind, ...args] = process.argv.slice(2)
const probes = {
  kafka: () => probeKafka(args[0] ?? "127.0.0.1", args[1] ?? "19092"),
  "kafka-warm": () => warmKafka(args[0] ?? "127.0.0.1", args[1] ?? "19092", args[2] ?? "60", args[3] ?? "50"),
  http: () => probeHttp(args[0] ?? "")
}
const probe = probes[kind]
if (!probe) {
  console.error("usage: probe.mjs kafka|kafka-warm <host> <port> | http <url>")
  process.exit(2)
}
probe().then(
  (detail) => {
    if (process.env.PROBE_VERBOSE) console.log(detail)
    process.exit(0)
  },
  (error) => {
    console.error(error instanceof Error ? error.message : String(error))
    process.exit(1)
  }
)
