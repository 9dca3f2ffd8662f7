/// The writer's concurrent memtable (SPEC §1.2, §5.4, §5.5): a skip list ordered by
/// (key asc as unsigned bytes, seq desc) with one writer at a time and lock-free readers.
namespace Slate.Engine

open System
open System.Buffers.Binary
open System.Collections
open System.Collections.Generic
open System.Numerics
open System.Threading
open Slate.Model

/// A forward link: the successor and a copy of its key prefix, so that a search can stop at a
/// level without touching the successor's memory. The prefix is written before the (release)
/// pointer write; a reader reads the pointer first (acquire). A reader may see a newer prefix with
/// an older pointer; that pair only ever makes it stop a level early, which is safe, and every
/// move forward is decided on the successor node itself.
[<Struct; NoEquality; NoComparison>]
type internal SkipLink =
    /// The successor (null at the end).
    [<DefaultValue(false)>]
    val mutable Node: SkipNode

    /// `Node.Prefix` when `Node` is not null.
    [<DefaultValue(false)>]
    val mutable Prefix: uint64

/// A skip-list node. `Key`, `Prefix`, `Seq` and `Up` are immutable; `Next0`, the `Up` slots and
/// `Row` are written with release semantics and read with acquire semantics.
and [<AllowNullLiteral; Sealed>] internal SkipNode =
    /// The row's key (shared with the row, never mutated).
    val Key: byte[]
    /// The first 8 key bytes as a big-endian u64, zero-padded: decides most comparisons
    /// without touching the key array.
    val Prefix: uint64
    /// The row's sequence number.
    val Seq: uint64
    /// The row (replaced only by a duplicate (key, seq) insert).
    val mutable Row: RowEntry
    /// Successor at level 0.
    val mutable Next0: SkipNode
    /// Key prefix of `Next0`.
    val mutable Next0Prefix: uint64
    /// Links at levels 1 .. height-1 (null for height 1).
    val Up: SkipLink[]

    new(key: byte[], prefix: uint64, seq: uint64, row: RowEntry, height: int) =
        { Key = key
          Prefix = prefix
          Seq = seq
          Row = row
          Next0 = null
          Next0Prefix = 0UL
          Up = (if height > 1 then Array.zeroCreate (height - 1) else null) }

/// Comparison helpers of the skip list.
module internal SkipOrder =
    /// Levels of the skip list (branching 1/2: enough for 2^24 rows; more still work, slower).
    [<Literal>]
    let MaxHeight = 24

    /// The zero-padded big-endian u64 of the first 8 bytes; unsigned order of prefixes agrees with
    /// key order whenever the prefixes differ.
    let keyPrefix (k: ReadOnlySpan<byte>) : uint64 =
        if k.Length >= 8 then
            BinaryPrimitives.ReadUInt64BigEndian k
        else
            let mutable v = 0UL

            for i in 0 .. k.Length - 1 do
                v <- v ||| (uint64 k[i] <<< (56 - 8 * i))

            v

    /// Key order of a node against a key.
    let compareKey (n: SkipNode) (kp: uint64) (key: ReadOnlySpan<byte>) : int =
        if n.Prefix <> kp then
            (if n.Prefix < kp then -1 else 1)
        else
            ReadOnlySpan<byte>(n.Key).SequenceCompareTo key

    /// True when the node holds exactly `key`.
    let keyEquals (n: SkipNode) (kp: uint64) (key: ReadOnlySpan<byte>) : bool =
        n.Prefix = kp && ReadOnlySpan<byte>(n.Key).SequenceEqual key

    /// Acquire read of the successor at `level`.
    let inline next (n: SkipNode) (level: int) : SkipNode =
        if level = 0 then
            Volatile.Read(&n.Next0)
        else
            Volatile.Read(&n.Up[level - 1].Node)

    /// The key prefix stored with the link at `level` (read after `next`).
    let inline prefixAt (n: SkipNode) (level: int) : uint64 =
        if level = 0 then n.Next0Prefix else n.Up[level - 1].Prefix

    /// Sets the link at `level` without publishing (a node not yet reachable).
    let initLink (n: SkipNode) (level: int) (target: SkipNode) (prefix: uint64) : unit =
        if level = 0 then
            n.Next0 <- target
            n.Next0Prefix <- prefix
        else
            n.Up[level - 1].Node <- target
            n.Up[level - 1].Prefix <- prefix

    /// Publishes `target` as the successor at `level`: prefix first, then a release write of the
    /// pointer.
    let publishLink (n: SkipNode) (level: int) (target: SkipNode) : unit =
        if level = 0 then
            n.Next0Prefix <- target.Prefix
            Volatile.Write(&n.Next0, target)
        else
            n.Up[level - 1].Prefix <- target.Prefix
            Volatile.Write(&n.Up[level - 1].Node, target)

/// The list structure shared by the memtable and its cursors.
[<Sealed>]
type internal SkipCore() =
    let head =
        SkipNode(null, 0UL, 0UL, Unchecked.defaultof<RowEntry>, SkipOrder.MaxHeight)

    let mutable height = 1

    /// The sentinel before every node.
    member _.Head: SkipNode = head

    /// Levels in use (acquire read).
    member _.Height: int = Volatile.Read(&height)

    /// Raises the height (writer only).
    member _.RaiseHeight(h: int) : unit = Volatile.Write(&height, h)

    /// Walks to the last node ordered before the target and returns it (the head when none) with
    /// the first node not before it (null when none), both as seen at level 0. With
    /// `keyOnly = false` the target is (key, seq) in (key asc, seq desc) order; with `keyOnly =
    /// true` a node is before the target when its key is ≤ `key`. When `preds` is given, the last
    /// node before the target at every level in use is stored in it (writer only).
    member _.Find
        (kp: uint64, key: ReadOnlySpan<byte>, seq: uint64, keyOnly: bool, preds: SkipNode[])
        : struct (SkipNode * SkipNode) =
        let mutable x = head
        let mutable found = null
        let mutable level = Volatile.Read(&height) - 1

        while level >= 0 do
            let mutable n = SkipOrder.next x level
            let mutable go = true

            while go do
                if isNull n then
                    go <- false
                elif SkipOrder.prefixAt x level > kp then
                    // The successor's key is above the target's: stop without touching it.
                    go <- false
                else
                    let c = SkipOrder.compareKey n kp key

                    let before =
                        if keyOnly then c <= 0
                        elif c <> 0 then c < 0
                        else n.Seq > seq

                    if before then
                        x <- n
                        n <- SkipOrder.next x level
                    else
                        go <- false

            if not (isNull preds) then
                preds[level] <- x

            if level = 0 then
                found <- n

            level <- level - 1

        struct (x, found)

    /// First node at or after (key, seq).
    member this.FirstAtOrAfter(key: ReadOnlySpan<byte>, seq: uint64) : SkipNode =
        let struct (_, n) = this.Find(SkipOrder.keyPrefix key, key, seq, false, null)
        n

    /// First node whose key is greater than `key`.
    member this.FirstKeyAbove(key: ReadOnlySpan<byte>) : SkipNode =
        let struct (_, n) = this.Find(SkipOrder.keyPrefix key, key, 0UL, true, null)
        n

    /// Last node whose key is less than `key` (null when none).
    member this.LastKeyBelow(key: ReadOnlySpan<byte>) : SkipNode =
        let struct (x, _) =
            this.Find(SkipOrder.keyPrefix key, key, UInt64.MaxValue, false, null)

        if Object.ReferenceEquals(x, head) then null else x

    /// Last node whose key is ≤ `key` (null when none).
    member this.LastKeyAtOrBelow(key: ReadOnlySpan<byte>) : SkipNode =
        let struct (x, _) = this.Find(SkipOrder.keyPrefix key, key, 0UL, true, null)
        if Object.ReferenceEquals(x, head) then null else x

    /// The last node of the list (null when empty).
    member _.Last() : SkipNode =
        let mutable x = head
        let mutable level = Volatile.Read(&height) - 1

        while level >= 0 do
            let mutable n = SkipOrder.next x level

            while not (isNull n) do
                x <- n
                n <- SkipOrder.next x level

            level <- level - 1

        if Object.ReferenceEquals(x, head) then null else x

/// A cursor over a memtable, bounded by a key range and a maximum seq (rows with a higher seq are
/// skipped). Ascending cursors return rows in (key asc, seq desc) order; descending cursors return
/// keys in descending order and, for each key, its versions newest first (key desc, seq desc), so
/// the first row of a key is always its newest visible version. Enumerator protocol: after
/// creation, `Reset` or a seek, `MoveNext` must be called before `Current`. A cursor belongs to one
/// thread; any number of cursors may run concurrently with the writer. Rows inserted while
/// iterating may or may not be returned; the order is always strict and rows are never torn.
/// Ascending steps cost O(1); a descending step to the previous key costs O(log n).
[<Sealed>]
type MemtableCursor internal (core: SkipCore, range: KeyRange, maxSeq: uint64, descending: bool) =
    // Ascending: `current` is the last returned node; when `fresh`, `pending` is the first node
    // to examine. Descending: `group` is the key being returned; when `fresh`, its first visible
    // version is still to be located. `ended` means exhausted.
    let mutable current: SkipNode = null
    let mutable pending: SkipNode = null
    let mutable group: byte[] = null
    let mutable fresh = true
    let mutable ended = false

    let setGroup (n: SkipNode) =
        current <- null
        fresh <- true

        if isNull n || KeyRange.isBelowStart range n.Key then
            group <- null
            ended <- true
        else
            group <- n.Key
            ended <- false

    let startAscending () =
        current <- null
        fresh <- true
        ended <- false

        pending <-
            match range.Start with
            | KeyBound.Unbounded -> SkipOrder.next core.Head 0
            | KeyBound.Included s -> core.FirstAtOrAfter(ReadOnlySpan<byte>(s), UInt64.MaxValue)
            | KeyBound.Excluded s -> core.FirstKeyAbove(ReadOnlySpan<byte>(s))

    let startDescending () =
        setGroup (
            match range.End with
            | KeyBound.Unbounded -> core.Last()
            | KeyBound.Included e -> core.LastKeyAtOrBelow(ReadOnlySpan<byte>(e))
            | KeyBound.Excluded e -> core.LastKeyBelow(ReadOnlySpan<byte>(e))
        )

    let moveAscending () =
        if ended then
            false
        else
            let mutable n = if fresh then pending else SkipOrder.next current 0
            fresh <- false
            pending <- null
            let mutable result = false
            let mutable go = true

            while go do
                if isNull n || KeyRange.isAboveEnd range n.Key then
                    ended <- true
                    current <- null
                    go <- false
                elif n.Seq <= maxSeq then
                    current <- n
                    result <- true
                    go <- false
                else
                    n <- SkipOrder.next n 0

            result

    let moveDescending () =
        let mutable result = false

        while not ended && not result do
            let key = ReadOnlySpan<byte>(group)

            let n =
                if fresh then
                    core.FirstAtOrAfter(key, maxSeq)
                else
                    SkipOrder.next current 0

            fresh <- false

            // Nodes after the first visible version of a key have smaller seqs: all visible.
            if not (isNull n) && SkipOrder.keyEquals n (SkipOrder.keyPrefix key) key then
                current <- n
                result <- true
            else
                setGroup (core.LastKeyBelow key)

        result

    do if descending then startDescending () else startAscending ()

    /// True for a descending cursor.
    member _.IsDescending: bool = descending

    /// The range the cursor is confined to.
    member _.Range: KeyRange = range

    /// Rows with a seq above this are skipped.
    member _.MaxSeq: uint64 = maxSeq

    /// Advances to the next row; false when the range is exhausted.
    member _.MoveNext() : bool =
        if descending then moveDescending () else moveAscending ()

    /// The row at the cursor. Throws `InvalidOperationException` before the first `MoveNext` or
    /// after the end.
    member _.Current: RowEntry =
        if isNull current then
            invalidOp "the memtable cursor is not positioned on a row"

        Volatile.Read(&current.Row)

    /// Back to the beginning of the range (its start when ascending, its end when descending).
    member _.Reset() : unit =
        if descending then startDescending () else startAscending ()

    /// Ascending cursors only: the next `MoveNext` returns the first row whose key is ≥ `key`
    /// (and inside the range; a key below the range start means the range start).
    member _.SeekGE(key: ReadOnlySpan<byte>) : unit =
        if descending then
            invalidOp "SeekGE needs an ascending cursor"

        if KeyRange.isBelowStartSpan range key then
            startAscending ()
        else
            current <- null
            fresh <- true
            ended <- false
            pending <- core.FirstAtOrAfter(key, UInt64.MaxValue)

    /// Descending cursors only: the next `MoveNext` returns the newest visible row of the greatest
    /// key that is ≤ `key` (and inside the range; a key above the range end means the range end).
    member _.SeekLE(key: ReadOnlySpan<byte>) : unit =
        if not descending then
            invalidOp "SeekLE needs a descending cursor"

        if KeyRange.isAboveEndSpan range key then
            startDescending ()
        else
            setGroup (core.LastKeyAtOrBelow key)

    /// `SeekGE` for ascending cursors, `SeekLE` for descending ones: the next row returned is the
    /// first one at or beyond `key` in the cursor's direction.
    member this.Seek(key: ReadOnlySpan<byte>) : unit =
        if descending then this.SeekLE key else this.SeekGE key

    interface IEnumerator<RowEntry> with
        member this.Current: RowEntry = this.Current
        member this.Current: obj = box this.Current
        member this.MoveNext() = this.MoveNext()
        member this.Reset() = this.Reset()
        member _.Dispose() = ()

/// The concurrent memtable: a skip list ordered by (key asc as unsigned bytes, seq desc) mapping
/// to `RowEntry`.
///
/// Threading: `Insert` and `Freeze` must be serialized by the caller (the writer loop); a second
/// concurrent writer is detected and gets `InvalidOperationException`. Every other member is
/// lock-free and safe from any number of threads while the writer inserts: a node is fully
/// initialised before a release write links it in, and nodes are never removed.
///
/// The memtable keeps references to the inserted rows and their arrays; they must not be mutated
/// afterwards. Rows are returned as stored: tombstones and merge operands included, resolution is
/// the caller's.
[<Sealed>]
type Memtable() =
    let core = SkipCore()
    let preds: SkipNode[] = Array.zeroCreate SkipOrder.MaxHeight
    // The last node at every level (writer only): appends in (key, seq) order skip the search.
    let tails: SkipNode[] = Array.zeroCreate SkipOrder.MaxHeight
    let mutable rng = 0x2545F4914F6CDD1DUL
    let mutable writing = 0
    let mutable frozen = false
    let mutable count = 0L
    let mutable size = 0L
    let mutable minSeq = 0UL
    let mutable maxSeq = 0UL
    let mutable lastTick = Int64.MinValue
    let mutable lastNode: SkipNode = null

    let randomHeight () =
        // xorshift64; one random bit per level gives the 1/2 branching factor.
        rng <- rng ^^^ (rng <<< 13)
        rng <- rng ^^^ (rng >>> 7)
        rng <- rng ^^^ (rng <<< 17)
        let h = 1 + BitOperations.TrailingZeroCount(rng)
        min h SkipOrder.MaxHeight

    let enter () =
        if Interlocked.CompareExchange(&writing, 1, 0) <> 0 then
            invalidOp "concurrent memtable writers: Insert and Freeze must be serialized"

    let leave () = Volatile.Write(&writing, 0)

    let insertCore (row: RowEntry) : bool =
        let key = row.Key
        let span = ReadOnlySpan<byte>(key)
        let kp = SkipOrder.keyPrefix span
        let tail = tails[0]

        let at =
            if
                not (isNull tail)
                && (let c = SkipOrder.compareKey tail kp span in c < 0 || (c = 0 && tail.Seq > row.Seq))
            then
                // After the last node: the predecessors are the level tails.
                for level in 0 .. core.Height - 1 do
                    preds[level] <- (if isNull tails[level] then core.Head else tails[level])

                null
            else
                let struct (_, at) = core.Find(kp, span, row.Seq, false, preds)
                at

        let rowSize = Memtable.EstimateRowSize row

        match row.CreateTs with
        | Some t when t > lastTick -> Volatile.Write(&lastTick, t)
        | _ -> ()

        if not (isNull at) && at.Seq = row.Seq && SkipOrder.keyEquals at kp span then
            let old = at.Row
            Volatile.Write(&at.Row, row)
            Volatile.Write(&size, size - Memtable.EstimateRowSize old + rowSize)
            false
        else
            let h = randomHeight ()

            for level in core.Height .. h - 1 do
                preds[level] <- core.Head

            let node = SkipNode(key, kp, row.Seq, row, h)

            for level in 0 .. h - 1 do
                let p = preds[level]
                let succ = SkipOrder.next p level
                SkipOrder.initLink node level succ (SkipOrder.prefixAt p level)

                if isNull succ then
                    tails[level] <- node

            // Publish bottom-up: a node reachable at some level is reachable at every lower one.
            for level in 0 .. h - 1 do
                SkipOrder.publishLink preds[level] level node

            if h > core.Height then
                core.RaiseHeight h

            if count = 0L then
                Volatile.Write(&minSeq, row.Seq)
                Volatile.Write(&maxSeq, row.Seq)
            else
                if row.Seq < minSeq then
                    Volatile.Write(&minSeq, row.Seq)

                if row.Seq > maxSeq then
                    Volatile.Write(&maxSeq, row.Seq)

            if isNull lastNode || Bytes.compare key lastNode.Key > 0 then
                Volatile.Write(&lastNode, node)

            Volatile.Write(&size, size + rowSize)
            Volatile.Write(&count, count + 1L)
            true

    /// The estimated encoded size of one row: key length + value length + 20 bytes of overhead.
    static member EstimateRowSize(row: RowEntry) : int64 =
        let v =
            match row.Value with
            | RowValue.Value v
            | RowValue.Merge v -> v.LongLength
            | RowValue.Tombstone -> 0L

        row.Key.LongLength + v + 20L

    /// Inserts a row (writer only). Returns true when a new (key, seq) entry was added. A row
    /// whose (key, seq) is already present (only WAL replay of the same rows can cause this)
    /// replaces the stored row in place — readers see the old or the new row, never a mix — and
    /// returns false; `Count` is unchanged and `EstimatedSize` is adjusted by the size difference.
    /// Throws `InvalidOperationException` once frozen or when another insert is in progress, and
    /// `ArgumentNullException` for a null key.
    member _.Insert(row: RowEntry) : bool =
        if isNull (box row) || isNull row.Key then
            nullArg "row.Key"

        enter ()

        try
            if frozen then
                invalidOp "the memtable is frozen"

            insertCore row
        finally
            leave ()

    /// The newest version of `key` with seq ≤ `maxSeq` (tombstones and merge operands included).
    member _.TryGet(key: ReadOnlySpan<byte>, maxSeq: uint64) : RowEntry voption =
        let kp = SkipOrder.keyPrefix key
        let struct (_, n) = core.Find(kp, key, maxSeq, false, null)

        if not (isNull n) && SkipOrder.keyEquals n kp key then
            ValueSome(Volatile.Read(&n.Row))
        else
            ValueNone

    /// Every version of `key` with seq ≤ `maxSeq`, newest first (empty when none).
    member _.Versions(key: ReadOnlySpan<byte>, maxSeq: uint64) : RowEntry[] =
        let kp = SkipOrder.keyPrefix key
        let struct (_, first) = core.Find(kp, key, maxSeq, false, null)
        let acc = ResizeArray<RowEntry>()
        let mutable n = first

        while not (isNull n) && SkipOrder.keyEquals n kp key do
            acc.Add(Volatile.Read(&n.Row))
            n <- SkipOrder.next n 0

        acc.ToArray()

    /// An ascending cursor over the rows of `range` with seq ≤ `maxSeq` (`UInt64.MaxValue` = all).
    member _.Cursor(range: KeyRange, maxSeq: uint64) : MemtableCursor =
        new MemtableCursor(core, range, maxSeq, false)

    /// A descending cursor (key desc, each key's versions newest first) over the rows of `range`
    /// with seq ≤ `maxSeq`.
    member _.DescendingCursor(range: KeyRange, maxSeq: uint64) : MemtableCursor =
        new MemtableCursor(core, range, maxSeq, true)

    /// The rows of `range` with seq ≤ `maxSeq` in (key asc, seq desc) order.
    member this.Iterate(range: KeyRange, maxSeq: uint64) : seq<RowEntry> =
        seq {
            use c = this.Cursor(range, maxSeq)

            while c.MoveNext() do
                yield c.Current
        }

    /// The rows of `range` with seq ≤ `maxSeq` in (key desc, seq desc) order.
    member this.IterateDescending(range: KeyRange, maxSeq: uint64) : seq<RowEntry> =
        seq {
            use c = this.DescendingCursor(range, maxSeq)

            while c.MoveNext() do
                yield c.Current
        }

    /// Every row in (key asc, seq desc) order: the input of an L0 SST build.
    member this.ToSeq() : seq<RowEntry> =
        this.Iterate(KeyRange.all, UInt64.MaxValue)

    /// Number of (key, seq) entries.
    member _.Count: int64 = Volatile.Read(&count)

    /// True when no row was inserted.
    member _.IsEmpty: bool = Volatile.Read(&count) = 0L

    /// Estimated encoded SST size: the sum of `EstimateRowSize` over the stored rows.
    member _.EstimatedSize: int64 = Volatile.Read(&size)

    /// The smallest key, if any.
    member _.FirstKey: byte[] voption =
        let n = SkipOrder.next core.Head 0
        if isNull n then ValueNone else ValueSome n.Key

    /// The greatest key, if any.
    member _.LastKey: byte[] voption =
        let n = Volatile.Read(&lastNode)
        if isNull n then ValueNone else ValueSome n.Key

    /// The highest seq inserted (0 when empty).
    member _.MaxSeq: uint64 = Volatile.Read(&maxSeq)

    /// The lowest seq inserted (0 when empty).
    member _.MinSeq: uint64 = Volatile.Read(&minSeq)

    /// The highest `create_ts` seen (`Int64.MinValue` when no row carried one): the TTL clock of
    /// the flush (SPEC §5.5) and the L0's `last_l0_clock_tick` contribution.
    member _.LastTick: int64 = Volatile.Read(&lastTick)

    /// True once frozen.
    member _.IsFrozen: bool = Volatile.Read(&frozen)

    /// Makes the memtable immutable: later inserts throw `InvalidOperationException`. Serialized
    /// with `Insert` like any writer call; reads continue to work. Idempotent.
    member _.Freeze() : unit =
        enter ()
        Volatile.Write(&frozen, true)
        leave ()
