/// Public value types of the engine API (writes, reads, TTL) and input validation (SPEC §6, §8).
namespace Slate.Engine

open System
open Slate

/// Time to live of a put or merge (SPEC §6.2).
[<RequireQualifiedAccess>]
type Ttl =
    /// Use `DbOptions.DefaultTtl`.
    | Default
    /// Never expires.
    | NoExpiry
    /// Expires this long after the write's create_ts.
    | ExpireAfter of TimeSpan
    /// Expires at this absolute time.
    | ExpireAt of DateTimeOffset

/// One operation of a write batch.
[<RequireQualifiedAccess>]
type WriteOp =
    /// Put a value.
    | Put of key: byte[] * value: byte[] * ttl: Ttl
    /// Delete a key.
    | Delete of key: byte[]
    /// Append a merge operand.
    | Merge of key: byte[] * operand: byte[] * ttl: Ttl

/// Read durability (SPEC §6.3).
type Durability =
    /// Committed data, including data a crash can still lose.
    | Memory = 0
    /// Only data already in object storage.
    | Remote = 1

/// Which buffer a flush writes.
type FlushKind =
    /// The WAL buffer, until durable.
    | Wal = 0
    /// The memtable, to an L0 SST.
    | MemTable = 1

/// Options of one read.
type ReadOpts =
    {
        /// Durability level.
        Durability: Durability
        /// Also see rows of a batch still being inserted.
        Dirty: bool
        /// Keep fetched blocks in the block cache.
        CacheBlocks: bool
    }

/// What a committed write returns.
[<Struct>]
type WriteResult =
    {
        /// The batch's sequence number.
        Seq: uint64
        /// The batch's create_ts (ms since the Unix epoch).
        CreateTs: int64
    }

/// Validation of user input shared by every entry point (SPEC §8).
[<RequireQualifiedAccess>]
module Validate =
    /// Raises `Invalid` unless the key has 1..65535 bytes.
    let key (k: byte[]) : unit =
        if isNull k then
            nullArg "key"

        if k.Length = 0 then
            raise (SlateException.Invalid "key cannot be empty")

        if k.Length > 65535 then
            raise (SlateException.Invalid(sprintf "key is too long (%d bytes, at most 65535)" k.Length))

    /// Raises `Invalid` for values longer than u32.
    let value (v: byte[]) : unit =
        if isNull v then
            nullArg "value"

        if int64 v.LongLength > int64 UInt32.MaxValue then
            raise (SlateException.Invalid "value is too long (at most 4294967295 bytes)")

    /// Raises `Invalid` for a non-positive `ExpireAfter`.
    let ttl (t: Ttl) : unit =
        match t with
        | Ttl.ExpireAfter d when d <= TimeSpan.Zero -> raise (SlateException.Invalid "ExpireAfter must be positive")
        | _ -> ()
