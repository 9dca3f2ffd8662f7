/// The settle check (issue #5): a random load through the embedded compactor settles into sorted
/// runs, every key reads back, and GC (SPEC §5.12) then leaves only live objects, never anything
/// younger than `MinAge`, and the database still reads every key after a reopen.
module Slate.Properties.SettleTests

open System
open System.Collections.Generic
open System.Threading
open Expecto
open Slate
open Slate.Engine
open Slate.Model
open Slate.Properties.TestUtil
open Slate.Properties.EngineTests.Eng

let private path = "settle"

/// The system clock moved `offset` ahead (timers stay real): GC "later" without waiting.
type private AheadClock(offset: TimeSpan) =
    inherit TimeProvider()

    override _.GetUtcNow() =
        TimeProvider.System.GetUtcNow() + offset

/// How far ahead the GC passes that should collect everything run: past every object's age +
/// `MinAge` and past the 15-minute checkpoints of compaction commits.
let private ahead = TimeSpan.FromHours 1.0

let private waitUntil = CompactorTests.waitUntil

let private latest (store: IObjectStore) : StoredManifest =
    match await (ManifestStore(store, path).ReadLatestAsync ct) with
    | Some m -> m
    | None -> failtest "no manifest"

/// Every object of the database, parsed (a name that does not parse fails the test).
let private listDb (store: IObjectStore) : (ObjectName * ObjectMeta) list =
    [ for m in await (store.ListAsync(path + "/", ct)) do
          match Paths.parseKey path m.Key with
          | Some n -> n, m
          | None -> failtestf "unexpected object %s" m.Key ]

let private manifestIds objs =
    objs
    |> List.choose (function
        | ObjectName.Manifest id, _ -> Some id
        | _ -> None)
    |> List.sort

let private compactionIds objs =
    objs
    |> List.choose (function
        | ObjectName.Compactions id, _ -> Some id
        | _ -> None)
    |> List.sort

let private walObjects objs =
    objs
    |> List.choose (function
        | ObjectName.Wal id, m -> Some(id, m)
        | _ -> None)
    |> List.sortBy fst

let private compactedIds objs =
    objs
    |> List.choose (function
        | ObjectName.Compacted u, _ -> Some u
        | _ -> None)
    |> Set.ofList

/// The latest compactor state (largest id in `compactions/`).
let private compactorState (store: IObjectStore) : CompactorState option =
    match compactionIds (listDb store) with
    | [] -> None
    | ids ->
        let r =
            await (store.GetAsync(Paths.key path (ObjectName.Compactions(List.max ids)), ct))

        Some(okOrFail (CompactionStateCodec.decode r.Data))

/// A WAL object is a fence when it is empty or its info block has no `first_entry`.
let private isFence (store: IObjectStore) (m: ObjectMeta) : bool =
    m.Size = 0L
    || (okOrFail (Sst.openBytes (await (store.GetAsync(m.Key, ct))).Data)).Info.FirstEntry.IsNone

let private expectSubset (sub: Set<'a>) (sup: Set<'a>) (what: string) : unit =
    let missing = sub - sup

    if not missing.IsEmpty then
        failtestf "%s: %d missing, e.g. %A" what missing.Count (Seq.truncate 5 missing |> List.ofSeq)

let private valueOfRow (k: string) (r: RowEntry) : byte[] =
    match r.Value with
    | RowValue.Value v -> v
    | other -> failtestf "%s: read returned a non-value row %A" k other

/// Every key of `model` reads back with `get`, and a full scan equals the sorted model.
let private verifyAll (db: Db) (model: Dictionary<string, byte[]>) (what: string) : unit =
    for KeyValue(k, v) in model do
        match await (db.GetAsync(utf8 k, readOpts, ct)) with
        | None -> failtestf "%s: %s is missing" what k
        | Some r ->
            if valueOfRow k r <> v then
                failtestf "%s: %s reads a wrong value" what k

    let sorted = Seq.toArray model.Keys
    Array.sortInPlaceWith (fun (a: string) b -> String.CompareOrdinal(a, b)) sorted
    let it = iterator db readOpts KeyRange.all false None
    let mutable i = 0
    let mutable go = true

    while go do
        match await (it.NextAsync ct) with
        | None -> go <- false
        | Some r ->
            let k = str r.Key

            if i >= sorted.Length then
                failtestf "%s: the scan returned %s after the last key" what k

            if k <> sorted[i] then
                failtestf "%s: scan row %d is %s, expected %s" what i k sorted[i]

            if valueOfRow k r <> model[k] then
                failtestf "%s: the scan reads a wrong value for %s" what k

            i <- i + 1

    Expect.equal i sorted.Length (sprintf "%s: the scan returns every key of the model" what)

/// What the load did.
type SettleResult =
    { Keys: int
      UserBytes: int64
      LoadSeconds: float
      SettleSeconds: float
      L0: int
      SortedRuns: int
      WriteAmplification: float }

let private writerOptions: DbOptions =
    { CompactorTests.compactingOptions with
        L0SstSizeBytes = 64L * 1024L
        MaxUnflushedBytes = 1024L * 1024L
        FlushInterval = Some(TimeSpan.FromMilliseconds 50.0)
        BlockCacheBytes = 64L <<< 20 }

/// Loads `n` random keys (13-byte keys, 100-byte values, batches of 100) through an embedded
/// compactor on a metered store and waits until the compactor is idle with L0 below 4. Returns
/// the figures, and fills `model` with what was written (last write wins).
let private settle (metered: MeteredObjectStore) (n: int) (model: Dictionary<string, byte[]>) =
    let store = metered :> IObjectStore

    let o =
        { writerOptions with
            Compactor = Some CompactorTests.settings }

    let sw = Diagnostics.Stopwatch.StartNew()
    let db = openDb store path o
    let rnd = Random 99
    let mutable userBytes = 0L
    let batch = 100

    for _ in 0 .. (n / batch) - 1 do
        let ops =
            [ for _ in 1..batch do
                  let k = sprintf "key%010d" (rnd.Next())
                  let v = Array.zeroCreate<byte> 100
                  rnd.NextBytes v
                  let kb = utf8 k
                  userBytes <- userBytes + int64 (kb.Length + v.Length)
                  model[k] <- v
                  WriteOp.Put(kb, v, Ttl.Default) ]

        await (db.WriteAsync(ops, ct)) |> ignore

    awaitU (db.FlushAsync(FlushKind.MemTable, ct))
    let loaded = sw.Elapsed.TotalSeconds
    // settled = L0 below 4 and no job submitted or running for 10 polls in a row (the same
    // compactor-state file), so that no abandoned job leaves orphans at close
    let mutable quiet = 0
    let mutable lastState = None

    waitUntil (max 120.0 (float n / 2000.0)) "settling" (fun () ->
        let ids = compactionIds (listDb store)
        let st = compactorState store

        let idle =
            (latest store).Manifest.L0.Length < 4
            && st |> Option.forall (fun s -> List.isEmpty (CompactorState.active s))

        let stateId = List.tryLast ids
        quiet <- (if idle && stateId = lastState then quiet + 1 else 0)
        lastState <- stateId
        Thread.Sleep 20
        quiet >= 10)

    let settled = sw.Elapsed.TotalSeconds
    verifyAll db model "after settling"
    awaitU (db.CloseAsync(None, ct))
    let m = (latest store).Manifest
    // every object under compacted/ (nothing is deleted yet): L0 flushes and compaction outputs
    let compacted =
        listDb store
        |> List.sumBy (function
            | ObjectName.Compacted _, meta -> meta.Size
            | _ -> 0L)

    let wa = float compacted / float userBytes
    let written = metered.Snapshot().BytesWritten

    printfn
        "settle: %d keys, %d user bytes; loaded in %.1f s, settled in %.1f s; L0 %d, sorted runs %d (%s); compacted/ %d bytes, write amplification %.2f; all puts %d bytes (%.2f x); every key read back in %.1f s"
        n
        userBytes
        loaded
        settled
        m.L0.Length
        m.Compacted.Length
        (String.Join(
            ", ",
            m.Compacted
            |> List.map (fun sr -> sprintf "SR %d: %d SSTs" sr.Id sr.Ssts.Length)
        ))
        compacted
        wa
        written
        (float written / float userBytes)
        (sw.Elapsed.TotalSeconds - settled)

    { Keys = n
      UserBytes = userBytes
      LoadSeconds = loaded
      SettleSeconds = settled
      L0 = m.L0.Length
      SortedRuns = m.Compacted.Length
      WriteAmplification = wa }

/// Runs one GC pass with default settings at `clock`, checks the report's bookkeeping against
/// the listings before and after, and returns (report, before, after, WAL fence ids before).
let private gcPass (store: IObjectStore) (s: GcSettings) (clock: TimeProvider) =
    let before = listDb store

    let fences =
        walObjects before
        |> List.filter (fun (_, m) -> isFence store m)
        |> List.map fst
        |> Set.ofList

    let r = await (Gc.runOnceAsync store path s clock ct)
    let after = listDb store
    Expect.isEmpty (GcReport.failures r) "no delete failed"
    let afterKeys = after |> List.map (fun (_, m) -> m.Key) |> Set.ofList

    let gone =
        before
        |> List.map (fun (_, m) -> m.Key)
        |> List.filter (afterKeys.Contains >> not)
        |> Set.ofList

    let reported = r.Directories |> List.collect (fun d -> d.Deleted) |> Set.ofList
    Expect.equal reported gone "the report lists exactly the objects that went"
    r, before, after, fences

/// After a pass at a clock past every age and checkpoint expiry, exactly the live objects remain
/// (SPEC §5.12): the latest manifest and compactor state, WAL ids ≥ `replay_after_wal_id` and
/// fences, the SSTs the latest manifest references plus unreferenced ones the compacted cutoff
/// still protects (ULID time ≥ cutoff; `strict` requires there be none), and the boundary files.
/// Returns (protected unreferenced SSTs kept, L, N) with L and N of the cutoff in Unix ms.
let private expectOnlyLive
    (store: IObjectStore)
    (r: GcReport)
    (before: (ObjectName * ObjectMeta) list)
    (after: (ObjectName * ObjectMeta) list)
    (fences: Set<uint64>)
    (minAge: TimeSpan)
    (strict: bool)
    : int * int64 * int64 =
    let stored = latest store
    let m = stored.Manifest
    Expect.isEmpty m.Checkpoints "every checkpoint expired and was removed"
    Expect.equal r.ManifestId stored.Id "the pass planned with the latest manifest"
    // manifest/: only the latest; the boundary is the largest deleted id
    Expect.equal (manifestIds after) [ stored.Id ] "manifest/ holds only the latest manifest"
    let deletedManifests = manifestIds before |> List.filter (fun i -> i < stored.Id)

    if not deletedManifests.IsEmpty then
        Expect.equal r.ManifestBoundary (Some(List.max deletedManifests)) "manifest boundary = largest deleted id"

    // compactions/: only the latest
    let cBefore = compactionIds before
    Expect.equal (compactionIds after) [ List.max cBefore ] "compactions/ holds only the latest state"

    if cBefore.Length > 1 then
        Expect.equal
            r.CompactionsBoundary
            (Some(cBefore |> List.filter (fun i -> i < List.max cBefore) |> List.max))
            "compactions boundary = largest deleted id"

    // boundary files present and holding at least what this pass ensured
    for name, b in
        [ ObjectName.ManifestBoundary, r.ManifestBoundary
          ObjectName.CompactionsBoundary, r.CompactionsBoundary ] do
        Expect.isTrue (after |> List.exists (fun (n, _) -> n = name)) (sprintf "%A is present" name)

        b
        |> Option.iter (fun b ->
            Expect.isGreaterThanOrEqual (await (Gc.readBoundaryAsync store path name ct)) b (sprintf "%A value" name))

    // wal/: ids ≥ replay_after_wal_id stay, and below it only fences
    let expectedWal =
        walObjects before
        |> List.filter (fun (id, _) -> id >= m.ReplayAfterWalId || fences.Contains id)
        |> List.map fst

    Expect.equal (walObjects after |> List.map fst) expectedWal "wal/: ids ≥ replay_after_wal_id and fences"

    Expect.isTrue
        (walObjects before |> List.exists (fun (id, _) -> id < m.ReplayAfterWalId))
        "there were WAL objects below replay_after_wal_id to collect"

    // compacted/: referenced, plus unreferenced ones at or after the cutoff
    let referenced = Manifest.allSsts m |> List.map (fun h -> h.Id) |> Set.ofList

    let st =
        compactorState store
        |> Option.defaultWith (fun () -> failtest "no compactor state")

    let l =
        match st.Compactions with
        | [] -> 0L
        | jobs -> jobs |> List.map (fun c -> Ulid.timestampMs c.Id) |> List.min

    let n =
        match m.L0, m.L0LastCompacted with
        | (_ :: _ as l0), _ -> l0 |> List.map (fun h -> Ulid.timestampMs h.Id) |> List.max
        | [], Some u -> Ulid.timestampMs u
        | [], None -> 0L

    let cutoff = min (r.NowMs - int64 minAge.TotalMilliseconds) (min l n)
    Expect.equal r.CompactedCutoffMs (Some cutoff) "cutoff = min(now - min_age, L, N)"
    let beforeSsts = compactedIds before
    expectSubset referenced beforeSsts "every referenced SST existed"

    let protectedSsts =
        beforeSsts
        |> Set.filter (fun u -> not (referenced.Contains u) && Ulid.timestampMs u >= cutoff)

    Expect.equal (compactedIds after) (referenced + protectedSsts) "compacted/: referenced SSTs and protected ones"

    if strict then
        Expect.isEmpty protectedSsts "no unreferenced SST remains"
    else
        Expect.isGreaterThan (beforeSsts.Count - (referenced + protectedSsts).Count) 0 "compacted SSTs were collected"

    protectedSsts.Count, l, n

let private countsLine (objs: (ObjectName * ObjectMeta) list) : string =
    let count dir =
        objs
        |> List.filter (fun (_, m) -> m.Key.StartsWith(Paths.dirPrefix path dir, StringComparison.Ordinal))
        |> List.length

    sprintf
        "%d objects, %d bytes (manifest %d, compactions %d, wal %d, compacted %d, gc %d)"
        objs.Length
        (objs |> List.sumBy (fun (_, m) -> m.Size))
        (count Paths.ManifestDir)
        (count Paths.CompactionsDir)
        (count Paths.WalDir)
        (count Paths.CompactedDir)
        (count Paths.GcDir)

/// The whole check: settle, read back, GC at a clock past every age, reopen and read back, a new
/// write, GC at the real clock (keeps everything younger than MinAge), GC ahead again (exactly the
/// referenced SSTs remain), reopen and read back.
let settleAndCollect (n: int) : SettleResult =
    let metered = MeteredObjectStore(InMemoryObjectStore())
    let store = metered :> IObjectStore
    let model = Dictionary<string, byte[]>(StringComparer.Ordinal)
    let result = settle metered n model
    let s = GcSettings.defaults
    let sw = Diagnostics.Stopwatch.StartNew()
    let r1, before1, after1, fences1 = gcPass store s (AheadClock ahead)
    Expect.isNonEmpty r1.ExpiredCheckpoints "the compaction checkpoints expired"
    let kept1, l1, n1 = expectOnlyLive store r1 before1 after1 fences1 s.MinAge false

    let gcSeconds = sw.Elapsed.TotalSeconds

    printfn
        "settle GC (%.1f s): before %s; after %s; %d unreferenced SSTs kept by the compacted cutoff (cutoff = %s; L = start of the latest job, N = newest L0 SST: %.1f s and %.1f s before the pass)"
        gcSeconds
        (countsLine before1)
        (countsLine after1)
        kept1
        (if l1 <= n1 then "L" else "N")
        (float (r1.NowMs - int64 ahead.TotalMilliseconds - l1) / 1000.0)
        (float (r1.NowMs - int64 ahead.TotalMilliseconds - n1) / 1000.0)

    // reopen after GC: every key reads back; one more write and an L0 flush
    let reopen = { writerOptions with Compactor = None }
    let db = openDb store path reopen
    verifyAll db model "after GC (reopened)"
    let extraKey = "key-after-gc"
    let extra = utf8 "written after the first GC pass"

    await (db.WriteAsync([ WriteOp.Put(utf8 extraKey, extra, Ttl.Default) ], ct))
    |> ignore

    model[extraKey] <- extra
    awaitU (db.FlushAsync(FlushKind.MemTable, ct))
    awaitU (db.CloseAsync(None, ct))
    // the converse: at the real clock with default MinAge, nothing younger than MinAge goes,
    // although a pass ahead (dry run) would delete some of those young objects
    let dry =
        await (Gc.runOnceAsync store path { s with DryRun = true } (AheadClock ahead) ct)

    let wouldDelete =
        dry.Directories |> List.collect (fun d -> d.WouldDelete) |> Set.ofList

    let r2, before2, after2, _ = gcPass store s TimeProvider.System

    let young =
        before2
        |> List.filter (fun (_, m) ->
            r2.NowMs - m.LastModified.ToUnixTimeMilliseconds()
            <= int64 s.MinAge.TotalMilliseconds)

    Expect.isNonEmpty
        (young |> List.filter (fun (_, m) -> wouldDelete.Contains m.Key))
        "some young objects are candidates that only MinAge protects"

    // a boundary file may be advanced (new etag) when older objects go; everything else is unchanged
    let identity (n: ObjectName, m: ObjectMeta) =
        match n with
        | ObjectName.ManifestBoundary
        | ObjectName.CompactionsBoundary -> m.Key, ""
        | _ -> m.Key, m.ETag

    expectSubset
        (young |> List.map identity |> Set.ofList)
        (after2 |> List.map identity |> Set.ofList)
        "every object younger than MinAge is still there, unchanged"

    for d in r2.Directories do
        for key in d.Deleted do
            let _, meta = before2 |> List.find (fun (_, m) -> m.Key = key)

            Expect.isGreaterThan
                (r2.NowMs - meta.LastModified.ToUnixTimeMilliseconds())
                (int64 s.MinAge.TotalMilliseconds)
                (sprintf "%s was older than MinAge" key)

    // ahead again: with a new L0 newer than every job, exactly the referenced SSTs remain
    let r3, before3, after3, fences3 = gcPass store s (AheadClock ahead)
    expectOnlyLive store r3 before3 after3 fences3 s.MinAge true |> ignore
    printfn "settle GC after a new write and flush: %s" (countsLine after3)
    let db = openDb store path reopen
    verifyAll db model "after the last GC pass (reopened)"
    awaitU (db.CloseAsync(None, ct))
    result

let allTests =
    testList
        "settle"
        [ test "a random load of 50,000 keys (SLATE_SETTLE_KEYS) settles, reads back, and GC leaves only live objects" {
              let n =
                  match Environment.GetEnvironmentVariable "SLATE_SETTLE_KEYS" with
                  | null
                  | "" -> 50_000
                  | v -> int v

              let r = settleAndCollect n
              Expect.isLessThan r.L0 4 "L0 below 4"
              Expect.isGreaterThan r.SortedRuns 0 "sorted runs exist"
              Expect.isGreaterThan r.WriteAmplification 1.0 "every byte is written at least once"
              Expect.isLessThan r.WriteAmplification 20.0 "write amplification stays bounded"
          } ]
