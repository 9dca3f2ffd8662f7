/// The read path (SPEC §1.3, §6.3): point lookups across memtables, L0 SSTs and sorted runs, and
/// merging row sources for scans in both orders.
namespace Slate.Engine

open System
open System.Collections.Generic
open System.Threading
open System.Threading.Tasks
open Slate
open Slate.Model

/// A consistent view of the tree: what a read consults, newest source first.
[<NoComparison; NoEquality>]
type LsmView =
    {
        /// The mutable memtable (None for readers without one).
        Memtable: Memtable
        /// Frozen memtables not yet published, newest first.
        Frozen: Memtable list
        /// Published L0 SSTs, newest first.
        L0: SstHandle list
        /// Sorted runs, highest id first.
        Compacted: SortedRun list
    }

/// A cursor over rows in (key, seq desc) order, ascending or descending by key.
[<AbstractClass>]
type RowSource() =
    /// Advances; false when exhausted.
    abstract MoveNextAsync: CancellationToken -> ValueTask<bool>
    /// The current row.
    abstract Current: RowEntry

/// Rows of a memtable cursor.
[<Sealed>]
type MemtableSource(cursor: MemtableCursor) =
    inherit RowSource()
    override _.MoveNextAsync(_ct) = ValueTask<bool>(cursor.MoveNext())
    override _.Current = cursor.Current

/// Scan read-ahead (API.md `ScanOptions`): fetch the next blocks of an SST before they are
/// needed, up to `Bytes` of data in at most `FetchTasks` concurrent range GETs.
[<NoComparison>]
type ReadAhead =
    {
        /// Bytes of data blocks fetched ahead (≥ 1; 1 = no read-ahead).
        Bytes: int64
        /// Concurrent range GETs (≥ 1).
        FetchTasks: int
    }

/// Functions over `ReadAhead`.
[<RequireQualifiedAccess>]
module ReadAhead =
    /// No read-ahead: one GET per block when it is needed.
    let none: ReadAhead = { Bytes = 1L; FetchTasks = 1 }

    /// Raises `Invalid` when `Bytes` < 1 or `FetchTasks` < 1.
    let validate (r: ReadAhead) : unit =
        if r.Bytes < 1L then
            raise (SlateException.Invalid(sprintf "ReadAheadBytes must be at least 1 (got %d)" r.Bytes))

        if r.FetchTasks < 1 then
            raise (SlateException.Invalid(sprintf "MaxFetchTasks must be at least 1 (got %d)" r.FetchTasks))

    /// True when blocks are fetched ahead.
    let enabled (r: ReadAhead) : bool = r.Bytes > 1L || r.FetchTasks > 1

/// Block reads of one SST in scan order with read-ahead: blocks `lo .. hi` may be needed; a read
/// of block i schedules the following blocks (in the scan direction) in chunks of consecutive
/// uncached blocks, one range GET per chunk.
[<Sealed>]
type private BlockFetcher
    (tables: TableStore, sst: OpenSst, lo: int, hi: int, descending: bool, cache: bool, ra: ReadAhead) =
    let dir = if descending then -1 else 1
    let prefetched = Dictionary<int, struct (Task<RowEntry[]> * int64)>()
    let chunks = ResizeArray<Task>()
    let mutable aheadBytes = 0L
    let mutable next = if descending then hi else lo // next block not yet scheduled
    let mutable lastIdx = -1
    let mutable lastRows: RowEntry[] = [||]

    let inBounds j =
        j >= lo && j <= hi && j >= 0 && j < sst.Meta.Index.Length

    let blockBytes j =
        let struct (s, e) = Sst.blockRange sst.Meta j
        int64 (e - s)

    /// Schedules blocks from `next` on: a chunk of consecutive uncached blocks of up to `budget`
    /// bytes (at least one block) as one GET. Returns false when nothing could be scheduled.
    let scheduleChunk (budget: int64) (ct: CancellationToken) : bool =
        if not (inBounds next) then
            false
        else
            match tables.TryGetCachedBlock(sst, next) with
            | Some rows ->
                prefetched[next] <- struct (Task.FromResult rows, 0L)
                next <- next + dir
                true
            | None ->
                let first = next
                let mutable last = next
                let mutable bytes = blockBytes next
                next <- next + dir

                while inBounds next
                      && bytes + blockBytes next <= budget
                      && (tables.TryGetCachedBlock(sst, next)).IsNone do
                    bytes <- bytes + blockBytes next
                    last <- next
                    next <- next + dir

                let a, b = min first last, max first last
                let chunk = tables.ReadBlocksAsync(sst, a, b, cache, ct)
                chunks.Add chunk

                for j in a..b do
                    let t =
                        task {
                            let! blocks = chunk
                            return blocks[j - a]
                        }

                    prefetched[j] <- struct (t, blockBytes j)

                aheadBytes <- aheadBytes + bytes
                true

    let topUp (ct: CancellationToken) =
        chunks.RemoveAll(fun t -> t.IsCompleted) |> ignore
        let budget = max 1L (ra.Bytes / int64 ra.FetchTasks)
        let mutable go = true

        while go && aheadBytes < ra.Bytes && chunks.Count < ra.FetchTasks do
            go <- scheduleChunk (min budget (ra.Bytes - aheadBytes)) ct

    /// Data block i.
    member _.GetAsync(i: int, ct: CancellationToken) : Task<RowEntry[]> =
        if i = lastIdx then
            Task.FromResult lastRows
        else
            task {
                let take () =
                    match prefetched.TryGetValue i with
                    | true, struct (t, bytes) ->
                        prefetched.Remove i |> ignore
                        aheadBytes <- aheadBytes - bytes
                        Some t
                    | _ -> None

                let t =
                    match take () with
                    | Some t -> t
                    | None ->
                        // not scheduled (first read, or a read off the sequence): restart the
                        // schedule at i
                        prefetched.Clear()
                        aheadBytes <- 0L
                        next <- i
                        scheduleChunk (max 1L (ra.Bytes / int64 ra.FetchTasks)) ct |> ignore

                        match take () with
                        | Some t -> t
                        | None -> tables.ReadBlockAsync(sst, i, cache, ct)

                topUp ct
                let! rows = t
                lastIdx <- i
                lastRows <- rows
                return rows
            }

/// Rows of one SST inside a range with seq ≤ maxSeq, reading blocks lazily.
[<Sealed>]
type SstSource
    (
        tables: TableStore,
        handle: SstHandle,
        range: KeyRange,
        maxSeq: uint64,
        descending: bool,
        cache: bool,
        readAhead: ReadAhead
    ) =
    inherit RowSource()
    let mutable fetcher: BlockFetcher option = None
    let queue = Queue<RowEntry>()
    let mutable sst: OpenSst option = None
    let mutable block = -1 // next block to load (ascending) / current block (descending)
    let mutable rows: RowEntry[] = [||]
    let mutable hi = 0 // descending: rows[0..hi) not yet emitted
    let mutable fin = false
    let mutable current = Unchecked.defaultof<RowEntry>

    let effectiveRange =
        match handle.VisibleRange with
        | Some vr ->
            match KeyRange.intersect range (vr) with
            | Some r -> r
            | None ->
                { Start = KeyBound.Excluded [| 0uy |]
                  End = KeyBound.Excluded [| 0uy |] }
        | None -> range

    let inRange (r: RowEntry) =
        r.Seq <= maxSeq && KeyRange.contains effectiveRange r.Key

    let boundKey (b: KeyBound) =
        match b with
        | KeyBound.Included k
        | KeyBound.Excluded k -> Some k
        | KeyBound.Unbounded -> None

    let ensureOpen (ct: CancellationToken) : Task<OpenSst> =
        task {
            match sst with
            | Some s -> return s
            | None ->
                let! s = tables.OpenAsync(handle, ct)
                sst <- Some s
                let n = s.Meta.Index.Length

                if descending then
                    block <-
                        match boundKey effectiveRange.End with
                        | None -> n - 1
                        | Some k ->
                            match Sst.candidateBlock s.Meta.Index (ReadOnlySpan k) with
                            | ValueSome b -> b
                            | ValueNone -> -1
                else
                    block <-
                        match boundKey effectiveRange.Start with
                        | None -> 0
                        | Some k ->
                            match Sst.candidateBlock s.Meta.Index (ReadOnlySpan k) with
                            | ValueSome b -> b
                            | ValueNone -> 0

                    if n = 0 then
                        block <- 0

                if ReadAhead.enabled readAhead && n > 0 then
                    // blocks that may hold rows of the range
                    let lastAtOrBelow (k: byte[]) =
                        let mutable lo = 0
                        let mutable hi = n

                        while lo < hi do
                            let mid = (lo + hi) >>> 1

                            if Bytes.compare s.Meta.Index[mid].FirstKey k <= 0 then
                                lo <- mid + 1
                            else
                                hi <- mid

                        lo - 1

                    let lo =
                        match boundKey effectiveRange.Start with
                        | None -> 0
                        | Some k ->
                            match Sst.candidateBlock s.Meta.Index (ReadOnlySpan k) with
                            | ValueSome b -> b
                            | ValueNone -> 0

                    let hi =
                        match boundKey effectiveRange.End with
                        | None -> n - 1
                        | Some k -> lastAtOrBelow k

                    fetcher <- Some(BlockFetcher(tables, s, lo, hi, descending, cache, readAhead))

                return s
        }

    let readBlock (s: OpenSst) (i: int) (ct: CancellationToken) : Task<RowEntry[]> =
        match fetcher with
        | Some f -> f.GetAsync(i, ct)
        | None -> tables.ReadBlockAsync(s, i, cache, ct)

    let groupStart (rs: RowEntry[]) (endExclusive: int) =
        let k = rs[endExclusive - 1].Key
        let mutable i = endExclusive - 1

        while i > 0 && Bytes.equal rs[i - 1].Key k do
            i <- i - 1

        i

    /// Ascending: loads the next block into the queue; false when done.
    let fillAscending (s: OpenSst) (ct: CancellationToken) : Task<bool> =
        task {
            let mutable produced = false

            while not produced && not fin do
                if block >= s.Meta.Index.Length then
                    fin <- true
                else
                    let! rs = readBlock s block ct
                    block <- block + 1

                    for r in rs do
                        if not fin then
                            if KeyRange.isAboveEnd effectiveRange r.Key then
                                fin <- true
                            elif inRange r then
                                queue.Enqueue r
                                produced <- true

            return produced
        }

    /// Descending: assembles the next key group (versions may span blocks) into the queue.
    let fillDescending (s: OpenSst) (ct: CancellationToken) : Task<bool> =
        task {
            let mutable produced = false

            while not produced && not fin do
                if hi = 0 then
                    if block < 0 then
                        fin <- true
                    else
                        let! rs = readBlock s block ct
                        rows <- rs
                        hi <- rs.Length
                        block <- block - 1
                else
                    let lo = groupStart rows hi
                    let key = rows[lo].Key
                    // versions of this key in earlier blocks are newer: gather them first
                    let parts = Stack<RowEntry[]>()
                    parts.Push(rows[lo .. hi - 1])
                    hi <- lo
                    let mutable more = hi = 0

                    while more && block >= 0 do
                        let! prev = readBlock s block ct

                        if prev.Length > 0 && Bytes.equal prev[prev.Length - 1].Key key then
                            let plo = groupStart prev prev.Length
                            parts.Push(prev[plo..])
                            rows <- prev
                            hi <- plo
                            block <- block - 1
                            more <- plo = 0
                        else
                            more <- false

                    if KeyRange.isBelowStart effectiveRange key then
                        fin <- true
                    else
                        for part in parts do
                            for r in part do
                                if inRange r then
                                    queue.Enqueue r
                                    produced <- true

            return produced
        }

    /// Without read-ahead.
    new(tables, handle, range, maxSeq, descending, cache) =
        SstSource(tables, handle, range, maxSeq, descending, cache, ReadAhead.none)

    override _.Current = current

    override this.MoveNextAsync(ct) =
        if queue.Count > 0 then
            current <- queue.Dequeue()
            ValueTask<bool>(true)
        elif fin then
            ValueTask<bool>(false)
        else
            ValueTask<bool>(
                task {
                    let! s = ensureOpen ct

                    let! ok =
                        if descending then
                            fillDescending s ct
                        else
                            fillAscending s ct

                    if ok then
                        current <- queue.Dequeue()

                    return ok
                }
            )

/// Concatenation of sources (the SSTs of one sorted run, in scan order).
[<Sealed>]
type ConcatSource(sources: (unit -> RowSource) list) =
    inherit RowSource()
    let mutable rest = sources
    let mutable cur: RowSource option = None

    override _.Current = cur.Value.Current

    override this.MoveNextAsync(ct) =
        ValueTask<bool>(
            task {
                let mutable result = false
                let mutable fin = false

                while not fin do
                    match cur with
                    | Some c ->
                        let! ok = c.MoveNextAsync ct

                        if ok then
                            result <- true
                            fin <- true
                        else
                            cur <- None
                    | None ->
                        match rest with
                        | [] -> fin <- true
                        | f :: tail ->
                            rest <- tail
                            cur <- Some(f ())

                return result
            }
        )

/// K-way merge of sources in precedence order; equal (key, seq) keep the first source's row.
[<Sealed>]
type MergingSource(sources: RowSource[], descending: bool) =
    inherit RowSource()

    let cmp (a: RowEntry) (b: RowEntry) =
        let c = Bytes.compare a.Key b.Key
        let c = if descending then -c else c
        if c <> 0 then c else compare b.Seq a.Seq

    let heap =
        PriorityQueue<int, struct (RowEntry * int)>(
            { new IComparer<struct (RowEntry * int)> with
                member _.Compare(struct (a, ia), struct (b, ib)) =
                    let c = cmp a b
                    if c <> 0 then c else compare ia ib }
        )

    let mutable started = false
    let mutable current = Unchecked.defaultof<RowEntry>
    let mutable hasLast = false

    override _.Current = current

    override _.MoveNextAsync(ct) =
        ValueTask<bool>(
            task {
                if not started then
                    started <- true
                    // position every source at once: on object storage each SST's first block is
                    // a GET, and a scan over n SSTs should wait for about one of them, not n in a row
                    let waiting = ResizeArray<struct (int * Task<bool>)>()

                    for i in 0 .. sources.Length - 1 do
                        let first = sources[i].MoveNextAsync ct

                        if first.IsCompletedSuccessfully then
                            if first.Result then
                                heap.Enqueue(i, struct (sources[i].Current, i))
                        else
                            waiting.Add(struct (i, first.AsTask()))

                    if waiting.Count > 0 then
                        // let every fetch finish before anything is rethrown (no source is left running)
                        try
                            do! Task.WhenAll(waiting |> Seq.map (fun struct (_, t) -> t :> Task))
                        with _ ->
                            ()

                        for struct (i, t) in waiting do
                            let! ok = t // rethrows the first failure in source order

                            if ok then
                                heap.Enqueue(i, struct (sources[i].Current, i))

                let mutable result = false
                let mutable fin = false

                while not fin do
                    let mutable i = 0
                    let mutable pr = struct (Unchecked.defaultof<RowEntry>, 0)

                    if not (heap.TryDequeue(&i, &pr)) then
                        fin <- true
                    else
                        let struct (row, _) = pr
                        let! ok = sources[i].MoveNextAsync ct

                        if ok then
                            heap.Enqueue(i, struct (sources[i].Current, i))

                        let dup = hasLast && current.Seq = row.Seq && Bytes.equal current.Key row.Key

                        if not dup then
                            current <- row
                            hasLast <- true
                            result <- true
                            fin <- true

                return result
            }
        )

/// Point lookups and source construction over an `LsmView`.
[<RequireQualifiedAccess>]
module ReadPath =
    let private bloomSaysAbsent (s: OpenSst) (hash: uint64) =
        match s.Filter with
        | Some f -> not (Bloom.mayContain (ReadOnlySpan f) hash)
        | None -> false

    let private keyInSst (h: SstHandle) (key: byte[]) =
        let inInfo =
            match h.Info.FirstEntry, h.Info.LastEntry with
            | Some f, Some l -> Bytes.compare key f >= 0 && Bytes.compare key l <= 0
            | Some f, None -> Bytes.compare key f >= 0
            | None, _ -> false

        inInfo
        && (match h.VisibleRange with
            | Some vr -> KeyRange.contains (vr) key
            | None -> true)

    /// A completed empty result, shared.
    let private noVersions: Task<RowEntry list> = Task.FromResult []

    /// Versions of `key` with seq ≤ maxSeq in one SST, newest first (may span blocks).
    let sstVersionsAsync
        (tables: TableStore)
        (h: SstHandle)
        (key: byte[])
        (hash: uint64)
        (maxSeq: uint64)
        (cache: bool)
        (ct: CancellationToken)
        : Task<RowEntry list> =
        // synchronous misses (outside the SST's keys, or the cached filter says absent) allocate nothing
        if not (keyInSst h key) then
            noVersions
        else
            match tables.TryGetOpen h with
            | Some s when bloomSaysAbsent s hash -> noVersions
            | _ ->

                task {
                    let! s = tables.OpenAsync(h, ct)

                    if bloomSaysAbsent s hash then
                        return []
                    else
                        match Sst.candidateBlock s.Meta.Index (ReadOnlySpan key) with
                        | ValueNone -> return []
                        | ValueSome b ->
                            let acc = ResizeArray<RowEntry>()
                            let mutable blk = b
                            let mutable fin = false

                            while not fin && blk < s.Meta.Index.Length do
                                let! rows = tables.ReadBlockAsync(s, blk, cache, ct)
                                // lower bound of key in rows
                                let mutable lo = 0
                                let mutable hi = rows.Length

                                while lo < hi do
                                    let mid = (lo + hi) >>> 1

                                    if Bytes.compare rows[mid].Key key < 0 then
                                        lo <- mid + 1
                                    else
                                        hi <- mid

                                let mutable i = lo

                                while i < rows.Length && Bytes.equal rows[i].Key key do
                                    if rows[i].Seq <= maxSeq then
                                        acc.Add rows[i]

                                    i <- i + 1

                                // the key can continue into the next block only if it ends this one
                                // and the next block's index key is not above it: a block's index
                                // key is a separator > the previous block's last key, equal to the
                                // key itself when its versions straddle the two blocks. So a key that
                                // merely ends this block costs no second GET.
                                if i < rows.Length then
                                    fin <- true
                                elif
                                    blk + 1 < s.Meta.Index.Length
                                    && Bytes.compareSpan
                                        (ReadOnlySpan s.Meta.Index[blk + 1].FirstKey)
                                        (ReadOnlySpan key)
                                       <= 0
                                then
                                    blk <- blk + 1
                                else
                                    fin <- true

                            return List.ofSeq acc
                }

    let private isBase (r: RowEntry) =
        match r.Value with
        | RowValue.Merge _ -> false
        | RowValue.Value _
        | RowValue.Tombstone -> true

    /// Collects versions newest first across the view until a base (value or tombstone) is found.
    let versionsAsync
        (tables: TableStore)
        (view: LsmView)
        (key: byte[])
        (maxSeq: uint64)
        (cache: bool)
        (ct: CancellationToken)
        : Task<RowEntry list> =
        // fast path: the newest version is a value or tombstone in a memtable
        let rec inMemtables (mts: Memtable list) =
            match mts with
            | [] -> ValueNone
            | mt :: older ->
                match mt.TryGet(ReadOnlySpan key, maxSeq) with
                | ValueSome r -> ValueSome r
                | ValueNone -> inMemtables older

        match inMemtables (view.Memtable :: view.Frozen) with
        | ValueSome r when isBase r -> Task.FromResult [ r ]
        | _ ->

            task {
                let acc = ResizeArray<RowEntry>()
                let mutable found = false

                let addAll (rows: RowEntry seq) =
                    for r in rows do
                        if not found then
                            acc.Add r

                            if isBase r then
                                found <- true

                for mt in view.Memtable :: view.Frozen do
                    if not found then
                        addAll (mt.Versions(ReadOnlySpan key, maxSeq))

                if not found then
                    let hash = Bloom.sipHash13 (ReadOnlySpan key)
                    let mutable l0 = view.L0

                    while not found && not l0.IsEmpty do
                        let! vs = sstVersionsAsync tables l0.Head key hash maxSeq cache ct
                        addAll vs
                        l0 <- l0.Tail

                    let mutable srs = view.Compacted

                    while not found && not srs.IsEmpty do
                        let sr = srs.Head
                        srs <- srs.Tail
                        // the SSTs of a run are key-ordered; a key's versions may straddle two of them
                        for h in sr.Ssts do
                            if not found && keyInSst h key then
                                let! vs = sstVersionsAsync tables h key hash maxSeq cache ct
                                addAll vs

                return List.ofSeq acc
            }

    /// The sources of a scan, in precedence order, with SST read-ahead.
    let sourcesWith
        (readAhead: ReadAhead)
        (tables: TableStore)
        (view: LsmView)
        (range: KeyRange)
        (maxSeq: uint64)
        (descending: bool)
        (cache: bool)
        : RowSource[] =
        let mts =
            view.Memtable :: view.Frozen
            |> List.map (fun mt ->
                let c =
                    if descending then
                        mt.DescendingCursor(range, maxSeq)
                    else
                        mt.Cursor(range, maxSeq)

                MemtableSource(c) :> RowSource)

        let overlaps (h: SstHandle) =
            match h.Info.FirstEntry, h.Info.LastEntry with
            | Some f, Some l -> KeyRange.overlapsKeys f l range
            | _ -> false

        let l0 =
            view.L0
            |> List.filter overlaps
            |> List.map (fun h -> SstSource(tables, h, range, maxSeq, descending, cache, readAhead) :> RowSource)

        let srs =
            view.Compacted
            |> List.map (fun sr ->
                let ssts = sr.Ssts |> List.filter overlaps
                let ssts = if descending then List.rev ssts else ssts

                ConcatSource(
                    ssts
                    |> List.map (fun h ->
                        fun () -> SstSource(tables, h, range, maxSeq, descending, cache, readAhead) :> RowSource)
                )
                :> RowSource)

        Array.ofList (mts @ l0 @ srs)

    /// The sources of a scan, in precedence order (no read-ahead).
    let sources
        (tables: TableStore)
        (view: LsmView)
        (range: KeyRange)
        (maxSeq: uint64)
        (descending: bool)
        (cache: bool)
        : RowSource[] =
        sourcesWith ReadAhead.none tables view range maxSeq descending cache
