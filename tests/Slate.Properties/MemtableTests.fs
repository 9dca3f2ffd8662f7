module Slate.Properties.MemtableTests

open System
open System.Threading
open Expecto
open FsCheck
open FsCheck.FSharp
open Slate.Model
open Slate.Engine
open Slate.Properties.TestUtil

// ---- The model: a list sorted by (key asc, seq desc), last insert of a (key, seq) wins ----

let rowOrder (a: RowEntry) (c: RowEntry) : int =
    let k = Bytes.compare a.Key c.Key
    if k <> 0 then k else compare c.Seq a.Seq

let modelOf (rows: RowEntry list) : RowEntry list =
    rows
    |> List.fold (fun (m: Map<string * uint64, RowEntry>) r -> m.Add((Bytes.toHex r.Key, r.Seq), r)) Map.empty
    |> Map.toList
    |> List.map snd
    |> List.sortWith rowOrder

let descendingModel (model: RowEntry list) : RowEntry list =
    model
    |> List.sortWith (fun a c ->
        let k = Bytes.compare c.Key a.Key
        if k <> 0 then k else compare c.Seq a.Seq)

let build (rows: RowEntry list) : Memtable =
    let m = Memtable()

    for r in rows do
        m.Insert r |> ignore

    m

let drain (c: MemtableCursor) : RowEntry list =
    [ while c.MoveNext() do
          yield c.Current ]

// ---- Generators ----

/// A scenario: a small pool of keys (shared prefixes, 0x00/0xFF) and rows drawn from it with
/// many versions per key; seqs from a small range so (key, seq) duplicates also occur.
let scenarioGen: Gen<byte[] list * RowEntry list> =
    gen {
        let! poolSize = Gen.choose (1, 12)
        let! pool = Gen.listOfLength poolSize Generators.keyGen
        let pool = pool |> List.distinctBy Bytes.toHex
        let! n = Gen.choose (0, 120)

        let! rows =
            Gen.listOfLength
                n
                (gen {
                    let! k = Gen.elements pool
                    let! s = Gen.choose (0, 60) |> Gen.map uint64
                    return! Generators.rowWith k s
                })

        return pool, rows
    }

let maxSeqGen: Gen<uint64> =
    Gen.frequency [ 4, Gen.choose (0, 62) |> Gen.map uint64; 1, Gen.constant UInt64.MaxValue ]

/// Probe keys: pool keys, their neighbours and random keys.
let probeGen (pool: byte[] list) : Gen<byte[]> =
    Gen.frequency
        [ 4, Gen.elements pool
          1, Gen.elements pool |> Gen.map (fun k -> Array.append k [| 0uy |])
          1, Gen.elements pool |> Gen.map (fun k -> Array.sub k 0 (k.Length - 1))
          1, Generators.keyGen ]

let boundGen (pool: byte[] list) : Gen<KeyBound> =
    Gen.frequency
        [ 1, Gen.constant KeyBound.Unbounded
          2, probeGen pool |> Gen.map KeyBound.Included
          2, probeGen pool |> Gen.map KeyBound.Excluded ]

/// Any bounds, empty and inverted ones included: cursors must honour `KeyRange.contains`.
let rangeGen (pool: byte[] list) : Gen<KeyRange> =
    Gen.map2 (fun s e -> { Start = s; End = e }) (boundGen pool) (boundGen pool)

type Case =
    { Pool: byte[] list
      Rows: RowEntry list
      Range: KeyRange
      MaxSeq: uint64
      Probes: byte[] list }

let caseGen: Gen<Case> =
    gen {
        let! pool, rows = scenarioGen
        let! range = rangeGen pool
        let! maxSeq = maxSeqGen
        let! probes = Gen.listOfLength 8 (probeGen pool)

        return
            { Pool = pool
              Rows = rows
              Range = range
              MaxSeq = maxSeq
              Probes = probes }
    }

let forCase (f: Case -> bool) = Prop.forAll (Arb.fromGen caseGen) f

let visible (c: Case) (model: RowEntry list) : RowEntry list =
    model
    |> List.filter (fun r -> r.Seq <= c.MaxSeq && KeyRange.contains c.Range r.Key)

let modelTests =
    testList
        "model"
        [ testPropN 300 "TryGet equals the newest model version with seq <= maxSeq"
          <| forCase (fun c ->
              let m = build c.Rows
              let model = modelOf c.Rows

              (c.Pool @ c.Probes)
              |> List.forall (fun k ->
                  [ 0UL; 1UL; 30UL; 59UL; 60UL; c.MaxSeq; UInt64.MaxValue ]
                  |> List.forall (fun s ->
                      let expected = model |> List.tryFind (fun r -> Bytes.equal r.Key k && r.Seq <= s)

                      let got =
                          match m.TryGet(ReadOnlySpan k, s) with
                          | ValueSome r -> Some r
                          | ValueNone -> None

                      got = expected)))

          testPropN 300 "Versions equals the model versions, newest first"
          <| forCase (fun c ->
              let m = build c.Rows
              let model = modelOf c.Rows

              (c.Pool @ c.Probes)
              |> List.forall (fun k ->
                  let expected =
                      model |> List.filter (fun r -> Bytes.equal r.Key k && r.Seq <= c.MaxSeq)

                  List.ofArray (m.Versions(ReadOnlySpan k, c.MaxSeq)) = expected))

          testPropN 300 "ascending iteration equals the model"
          <| forCase (fun c ->
              let m = build c.Rows
              let model = modelOf c.Rows
              List.ofSeq (m.Iterate(c.Range, c.MaxSeq)) = visible c model)

          testPropN 300 "descending iteration equals the model (key desc, seq desc)"
          <| forCase (fun c ->
              let m = build c.Rows
              let model = modelOf c.Rows
              List.ofSeq (m.IterateDescending(c.Range, c.MaxSeq)) = descendingModel (visible c model))

          testPropN 300 "ascending cursor: SeekGE after a few steps, Reset"
          <| Prop.forAll
              (Arb.fromGen (Gen.zip3 caseGen (Gen.choose (0, 5)) Generators.keyGen))
              (fun (c, steps, seekTo) ->
                  let m = build c.Rows
                  let expectedAll = visible c (modelOf c.Rows)
                  let cur = m.Cursor(c.Range, c.MaxSeq)

                  let first =
                      [ for _ in 1..steps -> if cur.MoveNext() then Some cur.Current else None ]

                  let firstOk =
                      first
                      |> List.choose id
                      |> (=) (expectedAll |> List.truncate (min steps expectedAll.Length))

                  let seekKeys = seekTo :: c.Pool

                  let seekOk =
                      seekKeys
                      |> List.forall (fun k ->
                          cur.SeekGE(ReadOnlySpan k)
                          drain cur = (expectedAll |> List.filter (fun r -> Bytes.compare r.Key k >= 0)))

                  cur.Reset()
                  firstOk && seekOk && drain cur = expectedAll && not (cur.MoveNext()))

          testPropN 300 "descending cursor: SeekLE after a few steps, Reset"
          <| Prop.forAll
              (Arb.fromGen (Gen.zip3 caseGen (Gen.choose (0, 5)) Generators.keyGen))
              (fun (c, steps, seekTo) ->
                  let m = build c.Rows
                  let expectedAll = descendingModel (visible c (modelOf c.Rows))
                  let cur = m.DescendingCursor(c.Range, c.MaxSeq)

                  let first =
                      [ for _ in 1..steps -> if cur.MoveNext() then Some cur.Current else None ]

                  let firstOk =
                      first
                      |> List.choose id
                      |> (=) (expectedAll |> List.truncate (min steps expectedAll.Length))

                  let seekOk =
                      seekTo :: c.Pool
                      |> List.forall (fun k ->
                          cur.Seek(ReadOnlySpan k)
                          drain cur = (expectedAll |> List.filter (fun r -> Bytes.compare r.Key k <= 0)))

                  cur.Reset()
                  firstOk && seekOk && drain cur = expectedAll)

          testPropN 200 "stats and ToSeq equal the model"
          <| forCase (fun c ->
              let m = build c.Rows
              let model = modelOf c.Rows
              let seqs = model |> List.map (fun r -> r.Seq)
              let keys = model |> List.map (fun r -> r.Key)

              let ticks =
                  c.Rows |> List.choose (fun r -> r.CreateTs) |> List.fold max Int64.MinValue

              List.ofSeq (m.ToSeq()) = model
              && m.Count = int64 model.Length
              && m.IsEmpty = model.IsEmpty
              && m.EstimatedSize = (model |> List.sumBy Memtable.EstimateRowSize)
              && m.MaxSeq = (if seqs.IsEmpty then 0UL else List.max seqs)
              && m.MinSeq = (if seqs.IsEmpty then 0UL else List.min seqs)
              && m.LastTick = ticks
              && m.FirstKey = (if keys.IsEmpty then
                                   ValueNone
                               else
                                   ValueSome(List.head keys))
              && m.LastKey = (if keys.IsEmpty then
                                  ValueNone
                              else
                                  ValueSome(List.last keys)))

          testPropN 200 "inserts in (key asc, seq desc) order (the append path) equal the model"
          <| Prop.forAll
              (Arb.fromGen (Gen.zip Generators.sortedRowsGen (Gen.listOf Generators.keyGen)))
              (fun (rows, probes) ->
                  // The sorted rows, then a second round of newer versions of the same keys, appended.
                  let newer = rows |> List.map (fun r -> { r with Seq = r.Seq + 200_000UL })
                  let m = build rows
                  let model = modelOf rows

                  let before =
                      List.ofSeq (m.ToSeq()) = model
                      && (probes @ (rows |> List.map (fun r -> r.Key)))
                         |> List.forall (fun k ->
                             let expected = model |> List.tryFind (fun r -> Bytes.equal r.Key k)
                             ValueOption.toOption (m.TryGet(ReadOnlySpan k, UInt64.MaxValue)) = expected)

                  for r in newer do
                      m.Insert r |> ignore

                  before && List.ofSeq (m.ToSeq()) = modelOf (rows @ newer))

          testPropN 200 "unique inserts grow EstimatedSize by the row estimate and return true"
          <| Prop.forAll (Arb.fromGen Generators.sortedRowsGen) (fun rows ->
              let m = Memtable()
              // Insert in a scrambled order.
              let rows = rows |> List.sortBy (fun r -> Crc32.ofArray r.Key ^^^ uint32 r.Seq)

              rows
              |> List.forall (fun r ->
                  let before = m.EstimatedSize
                  let added = m.Insert r
                  added && m.EstimatedSize = before + Memtable.EstimateRowSize r)) ]

let row (k: string) (seq: uint64) (v: string) : RowEntry =
    { Key = Text.Encoding.ASCII.GetBytes k
      Value = RowValue.Value(Text.Encoding.ASCII.GetBytes v)
      Seq = seq
      CreateTs = Some(int64 seq)
      ExpireTs = None }

let exampleTests =
    testList
        "examples"
        [ test "a duplicate (key, seq) replaces the stored row" {
              let m = Memtable()
              Expect.isTrue (m.Insert(row "a" 5UL "one")) "new"
              Expect.isFalse (m.Insert(row "a" 5UL "three")) "duplicate"
              Expect.equal m.Count 1L "count unchanged"

              Expect.equal
                  (m.TryGet(ReadOnlySpan(Text.Encoding.ASCII.GetBytes "a"), 9UL))
                  (ValueSome(row "a" 5UL "three"))
                  "replaced"

              Expect.equal m.EstimatedSize (Memtable.EstimateRowSize(row "a" 5UL "three")) "size follows the stored row"
          }
          test "Freeze: inserts throw, reads continue" {
              let m = Memtable()
              m.Insert(row "a" 1UL "x") |> ignore
              m.Freeze()
              Expect.isTrue m.IsFrozen "frozen"

              Expect.throwsT<InvalidOperationException>
                  (fun () -> m.Insert(row "b" 2UL "y") |> ignore)
                  "insert after freeze"

              Expect.equal (List.ofSeq (m.ToSeq())) [ row "a" 1UL "x" ] "still readable"
              m.Freeze()
          }
          test "empty memtable" {
              let m = Memtable()
              Expect.isTrue m.IsEmpty "empty"
              Expect.equal m.FirstKey ValueNone "no first key"
              Expect.equal m.LastKey ValueNone "no last key"
              Expect.equal m.LastTick Int64.MinValue "no tick"
              Expect.equal (m.TryGet(ReadOnlySpan [| 1uy |], UInt64.MaxValue)) ValueNone "no row"
              Expect.isEmpty (List.ofSeq (m.IterateDescending(KeyRange.all, UInt64.MaxValue))) "no rows"
          }
          test "Current before MoveNext and cursor-direction misuse throw" {
              let m = build [ row "a" 1UL "x" ]
              let c = m.Cursor(KeyRange.all, UInt64.MaxValue)
              Expect.throwsT<InvalidOperationException> (fun () -> c.Current |> ignore) "not positioned"

              Expect.throwsT<InvalidOperationException>
                  (fun () -> c.SeekLE(ReadOnlySpan [| 1uy |]))
                  "SeekLE on ascending"

              let d = m.DescendingCursor(KeyRange.all, UInt64.MaxValue)

              Expect.throwsT<InvalidOperationException>
                  (fun () -> d.SeekGE(ReadOnlySpan [| 1uy |]))
                  "SeekGE on descending"
          }
          test "many versions and long shared prefixes (prefix cache ties)" {
              let keys =
                  [ "aaaaaaaa"
                    "aaaaaaa"
                    "aaaaaaaa\000"
                    "aaaaaaaab"
                    "aaaaaaaaa"
                    "aaaaaaab"
                    "aaaaaaa\000" ]

              let rows =
                  [ for k in keys do
                        for s in 1UL .. 5UL -> row k (s * 10UL) (k + string s) ]

              let m = build (List.rev rows)
              Expect.equal (List.ofSeq (m.ToSeq())) (modelOf rows) "order"

              for k in keys do
                  let kb = Text.Encoding.ASCII.GetBytes k
                  Expect.equal (m.TryGet(ReadOnlySpan kb, 35UL)) (ValueSome(row k 30UL (k + "3"))) k
                  Expect.equal (m.TryGet(ReadOnlySpan kb, 9UL)) ValueNone k
          }
          test "a larger random workload matches the model" {
              let rnd = Random(7)

              let rows =
                  [ for i in 1..20_000 ->
                        let k = Array.init (rnd.Next(1, 10)) (fun _ -> byte (rnd.Next(0, 4) * 85))

                        { Key = k
                          Value = RowValue.Value(BitConverter.GetBytes i)
                          Seq = uint64 (rnd.Next(1, 1_000_000))
                          CreateTs = None
                          ExpireTs = None } ]

              let m = build rows
              let model = modelOf rows
              Expect.equal (List.ofSeq (m.ToSeq())) model "ascending"

              Expect.equal
                  (List.ofSeq (m.IterateDescending(KeyRange.all, 500_000UL)))
                  (descendingModel (model |> List.filter (fun r -> r.Seq <= 500_000UL)))
                  "descending"
          } ]

// ---- Concurrency: one writer, two readers ----

let keyCount = 5000

let keyOf (i: int) : byte[] =
    // Shared 6-byte prefix so that the prefix cache ties and full comparisons are exercised.
    Array.append "slate/"B (BitConverter.GetBytes(i) |> Array.rev)

/// The value is a function of (key, seq): a reader can detect torn or misplaced data.
let valueOf (key: byte[]) (seq: uint64) : byte[] =
    Array.append key (BitConverter.GetBytes seq)

let wellFormed (r: RowEntry) : bool =
    match r.Value with
    | RowValue.Value v -> Bytes.equal v (valueOf r.Key r.Seq) && r.CreateTs = Some(int64 r.Seq)
    | _ -> false

let concurrencyTest =
    test "one writer, two readers: ordered, well-formed, monotone visibility" {
        let total = 200_000
        let finished = [| 0 |]
        let errors = Collections.Concurrent.ConcurrentQueue<string>()
        let m = Memtable()
        let fail (msg: string) = errors.Enqueue msg

        let reader (id: int) () =
            let rnd = Random(100 + id)
            let seen = Collections.Generic.Dictionary<int, uint64>()
            let mutable lastCount = 0L
            let mutable lastSize = 0L
            let mutable rounds = 0

            try
                while Volatile.Read(&finished[0]) = 0 || rounds < 2 do
                    rounds <- rounds + 1
                    let count = m.Count
                    let size = m.EstimatedSize

                    if count < lastCount || size < lastSize then
                        fail "Count or EstimatedSize went backwards"

                    lastCount <- count
                    lastSize <- size

                    // Point reads: remember what we saw, re-check what we saw before.
                    for _ in 1..200 do
                        let i = rnd.Next keyCount
                        let k = keyOf i

                        match seen.TryGetValue i with
                        | true, s ->
                            match m.TryGet(ReadOnlySpan k, s) with
                            | ValueSome r when r.Seq = s && wellFormed r -> ()
                            | other -> fail (sprintf "key %d seen at %d, now %A" i s other)
                        | _ -> ()

                        match m.TryGet(ReadOnlySpan k, UInt64.MaxValue) with
                        | ValueSome r ->
                            if not (wellFormed r) || not (Bytes.equal r.Key k) then
                                fail "torn row"

                            match seen.TryGetValue i with
                            | true, s when r.Seq < s -> fail "newest version went backwards"
                            | _ -> seen[i] <- r.Seq
                        | ValueNone ->
                            if seen.ContainsKey i then
                                fail "a seen key disappeared"

                    // Ascending scan of a random range: strictly ordered and well-formed.
                    let lo = rnd.Next keyCount
                    let range = KeyRange.create (Some(keyOf lo)) true (Some(keyOf (lo + 300))) false

                    match range with
                    | Ok range ->
                        let mutable prev: RowEntry voption = ValueNone

                        for r in m.Iterate(range, UInt64.MaxValue) do
                            if not (wellFormed r) || not (KeyRange.contains range r.Key) then
                                fail "bad row in scan"

                            match prev with
                            | ValueSome p when rowOrder p r >= 0 -> fail "ascending scan out of order"
                            | _ -> ()

                            prev <- ValueSome r
                    | Error e -> fail e

                    // Descending scan from a random key: strictly (key desc, seq desc).
                    let cur = m.DescendingCursor(KeyRange.all, UInt64.MaxValue)
                    cur.SeekLE(ReadOnlySpan(keyOf (rnd.Next keyCount)))
                    let mutable prev: RowEntry voption = ValueNone
                    let mutable n = 0

                    while n < 300 && cur.MoveNext() do
                        let r = cur.Current
                        n <- n + 1

                        if not (wellFormed r) then
                            fail "bad row in descending scan"

                        match prev with
                        | ValueSome p ->
                            let c = Bytes.compare p.Key r.Key

                            if c < 0 || (c = 0 && p.Seq <= r.Seq) then
                                fail "descending scan out of order"
                        | _ -> ()

                        prev <- ValueSome r
            with e ->
                fail (string e)

        let readers = [ for i in 1..2 -> Thread(ThreadStart(reader i)) ]

        for t in readers do
            t.Start()

        let rnd = Random(1)

        for s in 1..total do
            let k = keyOf (rnd.Next keyCount)
            let seq = uint64 s

            let r =
                { Key = k
                  Value = RowValue.Value(valueOf k seq)
                  Seq = seq
                  CreateTs = Some(int64 seq)
                  ExpireTs = None }

            m.Insert r |> ignore

        Volatile.Write(&finished[0], 1)

        for t in readers do
            t.Join()

        Expect.isEmpty (List.ofSeq errors |> List.truncate 5) "reader errors"
        Expect.equal m.Count (int64 total) "all rows inserted"

        let all = List.ofSeq (m.ToSeq())
        Expect.isTrue (all |> List.pairwise |> List.forall (fun (a, c) -> rowOrder a c < 0)) "final order"
    }

let allTests = testList "Memtable" [ modelTests; exampleTests; concurrencyTest ]
