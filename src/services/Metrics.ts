/**
 * The metrics every part of the gateway reports, in one place so their names
 * stay consistent with the alert rules and dashboards under deploy/.
 * Prometheus names: counters end in `_total`, durations are in seconds.
 */
import { Metric } from "effect"

const latencyBoundaries = Metric.exponentialBoundaries({ start: 0.0005, factor: 2, count: 14 })

// Degradation: the names the spec and the alert rules use.
export const redisFailures = Metric.counter("redis_failures_total", {
  description: "Redis commands that failed or timed out; the gateway went on without the cache",
  incremental: true
})
export const rabbitmqFailures = Metric.counter("rabbitmq_failures_total", {
  description: "Publishes to RabbitMQ that failed or timed out; the gateway went on without the bus",
  incremental: true
})
export const databaseFailures = Metric.counter("database_write_failures_total", {
  description: "Batch writes to PostgreSQL that failed and were retried",
  incremental: true
})
/**
 * Rounds of the database's upkeep that failed; attribute `task`: `partitions`
 * (daily partitions made ahead), `poll_marks` (the poll's per-day marks
 * folded), `aggregates` (the count views refreshed and retention applied).
 * Each is retried on its next round.
 */
export const storageMaintenanceFailures = Metric.counter("storage_maintenance_failures_total", {
  description: "Rounds of database upkeep (partitions, poll marks, aggregates and retention) that failed, by task",
  incremental: true
})
/**
 * When each task of the database's upkeep last succeeded, in Unix seconds (0
 * until it first does); attribute `task` as above. A task whose loop stopped
 * (a defect, not a failed round) stops moving it, which no failure counter shows.
 */
export const storageMaintenanceLastSuccess = Metric.gauge("storage_maintenance_last_success_timestamp_seconds", {
  description: "When each task of database upkeep (partitions, poll marks, aggregates and retention) last succeeded, Unix seconds"
})
/** 1 when the tier answers, 0 while it is down; attribute `tier`: redis, rabbitmq, postgres. */
export const tierUp = Metric.gauge("tier_up", { description: "Whether a storage tier is reachable (1) or not (0)" })

// Flow.
export const eventsReceived = Metric.counter("events_received_total", {
  description: "Events accepted by the ingestion program, by kind",
  incremental: true
})
export const eventsRejected = Metric.counter("events_rejected_total", {
  description: "Events refused as malformed, rejected by the database, or committed but not publishable by the bus relay, by reason",
  incremental: true
})
export const eventsDuplicate = Metric.counter("events_duplicate_total", {
  description: "Events the dedup check had already seen",
  incremental: true
})
export const eventsCommitted = Metric.counter("events_committed_total", {
  description: "Events durably committed to PostgreSQL (new rows and duplicates alike)",
  incremental: true
})
export const eventsCached = Metric.counter("events_cached_total", {
  description: "Events written to the Redis hot cache",
  incremental: true
})
export const eventsPublished = Metric.counter("events_published_total", {
  description: "Events confirmed by RabbitMQ",
  incremental: true
})
export const writeQueueDepth = Metric.gauge("ingest_queue_depth", {
  description: "Events accepted and not yet committed to PostgreSQL (refreshed every second and on every scrape)"
})
export const oldestUncommitted = Metric.gauge("ingest_oldest_uncommitted_seconds", {
  description: "Age of the oldest accepted event not yet committed to PostgreSQL; 0 when none is waiting"
})
export const writerRestarts = Metric.counter("ingest_writer_restarts_total", {
  description: "Times the database writer ended unexpectedly and was restarted",
  incremental: true
})
export const busUnpublished = Metric.gauge("bus_unpublished_events", {
  description: "Committed events the bus relay has not yet seen confirmed by RabbitMQ"
})
export const busRelayLag = Metric.gauge("bus_relay_lag_seconds", {
  description: "Age of the oldest committed event not yet confirmed by RabbitMQ; 0 when the bus is caught up"
})
export const busRelayPublished = Metric.counter("bus_relay_published_total", {
  description: "Events the bus relay published from PostgreSQL because the hot path had not got them confirmed",
  incremental: true
})
export const hotPathSkipped = Metric.counter("hot_path_skipped_total", {
  description: "Events the hot path had no room for: not cached, published later by the bus relay",
  incremental: true
})
export const hotPathPublishSkipped = Metric.counter("hot_path_publish_skipped_total", {
  description: "Events the hot path cached but did not publish, its bound of events awaiting confirms being full: published later by the bus relay",
  incremental: true
})
export const cacheRefilled = Metric.counter("cache_refilled_total", {
  description: "Events written back to Redis from PostgreSQL after Redis lost its data",
  incremental: true
})
export const traceExportFailures = Metric.counter("otel_export_failures_total", {
  description: "Attempts to send spans to the OTLP collector that failed; the spans of a failed export are dropped",
  incremental: true
})
export const writeBatchSize = Metric.histogram("ingest_batch_size", {
  description: "Rows per batch written to PostgreSQL",
  boundaries: Metric.exponentialBoundaries({ start: 1, factor: 2, count: 12 })
})
/**
 * How long PostgreSQL took to commit a batch, as the writer saw it: the one
 * statement's round trip through PgBouncer, waiting for a connection
 * included. Beside `ingest_commit_seconds` it tells a slow database (this
 * high) from a writer falling behind (this low, the queue growing).
 */
export const writeDuration = Metric.histogram("ingest_write_seconds", {
  description: "Duration of each batch's committed write to PostgreSQL, through PgBouncer (the attempt that succeeded)",
  boundaries: latencyBoundaries
})

// Latency, from receipt.
export const hotPathLatency = Metric.histogram("ingest_hot_path_seconds", {
  description: "Receipt to cache write and bus confirm done",
  boundaries: latencyBoundaries
})
export const commitLatency = Metric.histogram("ingest_commit_seconds", {
  description: "Receipt to committed in PostgreSQL",
  boundaries: latencyBoundaries
})

// Telegram source.
/** 1 while the MTProto connection is up, 0 while connecting or down. */
export const telegramConnected = Metric.gauge("telegram_connected", {
  description: "Whether the gateway is connected to Telegram (1) or not (0)"
})
export const telegramReconnects = Metric.counter("telegram_reconnects_total", {
  description: "Connections to Telegram re-established after a drop or a failed attempt",
  incremental: true
})
/** Attribute `method`: the Telegram method that was answered FLOOD_WAIT (e.g. messages.GetHistory). */
export const telegramFloodWaits = Metric.counter("telegram_flood_waits_total", {
  description: "FLOOD_WAIT answers from Telegram, by method",
  incremental: true
})
export const telegramMalformedUpdates = Metric.counter("telegram_malformed_updates_total", {
  description: "Updates or messages from Telegram that could not be turned into events and were skipped",
  incremental: true
})
/** Attributes `channel` (id) and `kind`: push (a pushed update revealed it), overflow (pushes dropped for lack of room), too_long. */
export const telegramGaps = Metric.counter("telegram_gaps_total", {
  description: "Gaps found in a channel's update sequence, by channel and kind",
  incremental: true
})
/** Attributes `channel` and `via`: difference, too_long (history of the gap), history (edits and deletions found by re-reading). */
export const missedMessagesRecovered = Metric.counter("missed_messages_recovered_total", {
  description: "Events that no push delivered and the engine fetched itself, by channel and way",
  incremental: true
})
/** Attribute `channel`. */
export const telegramChannelPts = Metric.gauge("telegram_channel_pts", {
  description: "The pts up to which a channel's updates are committed"
})
/** Attribute `channel`. */
export const telegramFreshness = Metric.gauge("telegram_freshness_seconds", {
  description: "Seconds since the engine last confirmed the channel up to date with Telegram"
})
/** Attribute `channel`: 1 while Telegram refuses the channel (CHANNEL_PRIVATE, CHANNEL_INVALID). */
export const telegramChannelUnavailable = Metric.gauge("telegram_channel_unavailable", {
  description: "Whether Telegram refuses access to a configured channel (1) or not (0)"
})
export const telegramUpdatesDropped = Metric.counter("telegram_updates_dropped_total", {
  description: "Pushed updates dropped because the engine's buffer was full; recovered through getChannelDifference",
  incremental: true
})
export const telegramDifferenceCalls = Metric.counter("telegram_difference_calls_total", {
  description: "getChannelDifference and getDifference calls, by reason (start, poll, gap, too_long)",
  incremental: true
})
export const telegramStateSaveFailures = Metric.counter("telegram_state_save_failures_total", {
  description: "Writes of the committed update state to PostgreSQL that failed and will be retried",
  incremental: true
})
export const telegramStateReadFailures = Metric.counter("telegram_state_read_failures_total", {
  description: "Reads of stored messages for a too-long recovery's re-read window that failed and were retried",
  incremental: true
})
/** Attribute `channel`: 1 while a difference chain or a too-long recovery runs (freshness grows meanwhile). */
export const telegramChannelRecovering = Metric.gauge("telegram_channel_recovering", {
  description: "Whether the engine is recovering a channel's missed updates (1) or not (0)"
})
/** Attribute `channel`: read share of a too-long gap's message ids, 0 to 1 (1 when not recovering). */
export const telegramRecoveryProgress = Metric.gauge("telegram_recovery_progress_ratio", {
  description: "Share of a too-long gap's message ids read from history so far"
})
/** Attribute `channel`. */
export const telegramBackfillMessages = Metric.counter("telegram_backfill_messages_total", {
  description: "Messages read from history by backfill requests and committed",
  incremental: true
})
/** Attribute `status`: done, failed. */
export const telegramBackfillRequests = Metric.counter("telegram_backfill_requests_total", {
  description: "Backfill requests this process finished, by outcome",
  incremental: true
})
export const telegramBackfillStoreFailures = Metric.counter("telegram_backfill_store_failures_total", {
  description: "Reads and writes of backfill requests in PostgreSQL that failed (retried)",
  incremental: true
})
export const telegramCommitLatency = Metric.histogram("telegram_message_to_commit_seconds", {
  description: "From a message's Telegram date (its edit date for an edit) to its commit in PostgreSQL",
  boundaries: Metric.exponentialBoundaries({ start: 0.25, factor: 2, count: 14 })
})

// High availability (src/programs/AccountOwner.ts).
/** Attribute `account`: 1 while this process owns the account, 0 while it stands by (or the account needs a login). */
export const gatewayRole = Metric.gauge("gateway_role", {
  description: "This process's role for an account: 1 owner (connected with its key), 0 standby"
})
/** Attribute `account`. */
export const leaseAcquired = Metric.counter("lease_acquired_total", {
  description: "Account leases this process acquired (start or take-over)",
  incremental: true
})
/** Attributes `account`, `reason`: expired, taken, rebalanced, stopped, fatal. */
export const leaseReleased = Metric.counter("lease_released_total", {
  description: "Account leases this process gave up or lost, by reason",
  incremental: true
})
/** Attribute `account`. */
export const leaseRenewFailures = Metric.counter("lease_renew_failures_total", {
  description: "Lease renewals that failed (database unreachable or slow); past the lease's deadline the owner steps down",
  incremental: true
})
/** Attribute `account`. */
export const leasePollFailures = Metric.counter("lease_poll_failures_total", {
  description: "A standby's reads of the account's lease, and attempts to take it, that failed (PostgreSQL or PgBouncer unreachable, at start or later): the account waits, unowned, until the database answers",
  incremental: true
})
/** Attribute `account`. */
export const leaseTakeovers = Metric.counter("lease_takeovers_total", {
  description: "Account leases this process took over after they expired in another process's hands (it died, froze or was cut off)",
  incremental: true
})
/** Attribute `account`: 1 while Telegram's refusal of the account's session keeps this process from taking it. */
export const accountLoginNeeded = Metric.gauge("account_login_needed", {
  description: "1 while the account's session was refused by Telegram (revoked, unregistered, duplicated) and waits for 'telegram-gateway login'"
})
/** Attribute `account`. */
export const loginMarkFailures = Metric.counter("account_login_mark_failures_total", {
  description: "Refused sessions this process could not mark as needing a login in PostgreSQL (a standby may then be refused in turn)",
  incremental: true
})
/** Attribute `account`. */
export const fencedWrites = Metric.counter("lease_fenced_writes_total", {
  description: "Writes of update state the database refused because they carried a stale lease epoch",
  incremental: true
})
