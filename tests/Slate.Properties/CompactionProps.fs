/// Compaction validation, commit and job transitions (SPEC §5.8, §5.11; §9 invariants 16, 17, 28),
/// and the concurrent manifest-update model: writer L0 publishes, compactor commits and
/// checkpoint edits interleaved with compare-and-swap conflicts and merges by ownership (§5.1, §5.2).
module Slate.Properties.CompactionProps

open Expecto
open FsCheck
open FsCheck.FSharp
open Slate.Model
open Slate.Properties.TestUtil
open Slate.Properties.CompactionStateProps

// ---------------------------------------------------------------- fixtures

let private l0s (n: int) =
    List.init n (fun i -> handle (ulidAt (int64 (100 + n - i)) (uint64 i)) 10UL)

let private sr (id: uint32) =
    { Id = id
      Ssts = [ handle (ulidAt 50L (uint64 id)) 10UL ] }

let private baseManifest =
    { Manifest.initial with
        L0 = l0s 4
        Compacted = [ sr 5u; sr 3u; sr 1u ] }

let private ids (hs: SstHandle list) = hs |> List.map (fun h -> h.Id)
let private l0Ids = ids baseManifest.L0

let private spec l0 srs dst =
    { L0 = l0
      SortedRuns = srs
      Destination = dst }

let private isErr r = Result.isError r

// ---------------------------------------------------------------- examples

let private validationTests =
    testList
        "validation (§5.8)"
        [ test "accepts well-formed specs" {
              Expect.isOk (Compaction.validateSpec baseManifest (spec (List.skip 2 l0Ids) [] 6u)) "oldest L0s"
              Expect.isOk (Compaction.validateSpec baseManifest (spec l0Ids [ 5u; 3u ] 3u)) "all L0 + top SRs"
              Expect.isOk (Compaction.validateSpec baseManifest (spec [] [ 3u; 1u ] 1u)) "bottom SRs"
          }

          test "refuses malformed specs" {
              let m = baseManifest
              Expect.isTrue (isErr (Compaction.validateSpec m (spec [] [] 6u))) "no sources"
              Expect.isTrue (isErr (Compaction.validateSpec m (spec [ ulidAt 1L 99UL ] [] 6u))) "unknown L0"
              Expect.isTrue (isErr (Compaction.validateSpec m (spec [] [ 4u ] 4u))) "unknown SR"
              Expect.isTrue (isErr (Compaction.validateSpec m (spec (List.take 2 l0Ids) [] 6u))) "not the oldest L0"

              Expect.isTrue (isErr (Compaction.validateSpec m (spec [ l0Ids[1]; l0Ids[3] ] [] 6u))) "gap in L0 sources"

              Expect.isTrue (isErr (Compaction.validateSpec m (spec [] [ 5u; 1u ] 1u))) "gap in SR sources"
              Expect.isTrue (isErr (Compaction.validateSpec m (spec [] [ 1u; 3u ] 1u))) "wrong order"
              Expect.isTrue (isErr (Compaction.validateSpec m (spec [] [ 5u; 3u ] 5u))) "destination not lowest"
              Expect.isTrue (isErr (Compaction.validateSpec m (spec l0Ids [] 5u))) "L0-only onto an existing SR"

              Expect.isTrue
                  (isErr (Compaction.validateSpec m (spec (List.skip 3 l0Ids) [ 3u ] 3u)))
                  "L0 + SR 3 skips SR 5"
          }

          test "refuses sources or destination held by another active job; one Running L0 job" {
              let m = baseManifest
              let other = Compaction.submitted (ulidAt 1L 1UL) (spec [] [ 3u; 1u ] 1u)
              let mine = Compaction.submitted (ulidAt 1L 2UL) (spec [] [ 5u; 3u ] 3u)
              Expect.isTrue (isErr (Compaction.validate m [ other; mine ] mine)) "shared SR 3"

              let done' =
                  { other with
                      Status = CompactionStatus.Completed }

              Expect.isOk (Compaction.validate m [ done'; mine ] mine) "finished jobs do not count"
              Expect.isOk (Compaction.validate m [ mine ] mine) "the job itself does not count"

              let l0a =
                  { Compaction.submitted (ulidAt 1L 3UL) (spec [ l0Ids[3] ] [] 6u) with
                      Status = CompactionStatus.Running }

              let l0b = Compaction.submitted (ulidAt 1L 4UL) (spec (List.skip 2 l0Ids) [] 6u)
              Expect.isTrue (isErr (Compaction.validate m [ l0a; l0b ] l0b)) "second L0 job"
          }

          test "start moves Submitted to Running, or to Failed with a reason" {
              let ok = Compaction.submitted (ulidAt 1L 1UL) (spec [] [ 3u; 1u ] 1u)

              match Compaction.start baseManifest [ ok ] ok with
              | Ok j -> Expect.equal j.Status CompactionStatus.Running "running"
              | Error(_, why) -> failtest why

              let bad = Compaction.submitted (ulidAt 1L 2UL) (spec [] [ 9u ] 9u)

              match Compaction.start baseManifest [ bad ] bad with
              | Error(j, _) -> Expect.equal j.Status CompactionStatus.Failed "failed"
              | Ok _ -> failtest "expected failure"

              // v1 L0-only job decoded with destination 0: resolved to highest + 1 before validation
              let l0Only = Compaction.submitted (ulidAt 1L 3UL) (spec l0Ids [] 0u)

              match Compaction.start baseManifest [ l0Only ] l0Only with
              | Ok j -> Expect.equal j.Spec.Destination 6u "resolved"
              | Error(_, why) -> failtest why
          }

          test "transitions" {
              let j = Compaction.submitted (ulidAt 1L 1UL) (spec [] [ 1u ] 1u)
              let go s (x: Compaction) = Compaction.transition s x

              Expect.isOk (go CompactionStatus.Running j) "Submitted → Running"
              Expect.isOk (go CompactionStatus.Failed j) "Submitted → Failed"
              Expect.isError (go CompactionStatus.Completed j) "Submitted ↛ Completed"

              let r =
                  { j with
                      Status = CompactionStatus.Running }

              Expect.isOk (go CompactionStatus.Completed r) "Running → Completed"
              Expect.isOk (go CompactionStatus.Submitted r) "Running → Submitted (restart)"

              let c =
                  { j with
                      Status = CompactionStatus.Completed }

              for s in
                  [ CompactionStatus.Submitted
                    CompactionStatus.Running
                    CompactionStatus.Failed ] do
                  Expect.isError (go s c) "Completed is final"

              let outs = [ handle (ulidAt 2L 2UL) 1UL ]
              Expect.equal (Compaction.complete outs r |> Result.map (fun x -> x.OutputSsts)) (Ok outs) "outputs"
          }

          test "isLastRun" {
              Expect.isTrue (Compaction.isLastRun Manifest.initial (spec l0Ids [] 0u)) "no SRs"
              Expect.isFalse (Compaction.isLastRun baseManifest (spec l0Ids [] 6u)) "L0-only above SRs"
              Expect.isTrue (Compaction.isLastRun baseManifest (spec [] [ 3u; 1u ] 1u)) "down to SR 1"
              Expect.isFalse (Compaction.isLastRun baseManifest (spec [] [ 5u; 3u ] 3u)) "SR 1 remains"
          } ]

let private finishTests =
    testList
        "commit (§5.11)"
        [ test "L0 job: sources removed, output SR on top, marker = newest consumed L0" {
              let s = spec (List.skip 2 l0Ids) [] 6u
              let out = [ handle (ulidAt 200L 1UL) 5UL; handle (ulidAt 200L 2UL) 5UL ]
              let m = Compaction.finish baseManifest s out |> Result.defaultWith failtest
              Expect.equal (ids m.L0) (List.take 2 l0Ids) "newer L0s untouched, in order"
              Expect.equal (m.Compacted |> List.map (fun r -> r.Id)) [ 6u; 5u; 3u; 1u ] "ids descending"
              Expect.equal m.Compacted.Head.Ssts out "outputs"
              Expect.equal m.L0LastCompacted (Some l0Ids[2]) "marker"
              Expect.isError (Compaction.finish m s out) "committing twice is refused"
          }

          test "SR job: sources and old destination replaced at the destination's position" {
              let s = spec [] [ 5u; 3u ] 3u
              let out = [ handle (ulidAt 200L 1UL) 5UL ]
              let m = Compaction.finish baseManifest s out |> Result.defaultWith failtest
              Expect.equal (m.Compacted |> List.map (fun r -> r.Id)) [ 3u; 1u ] "SR 5 gone, 3 replaced"
              Expect.equal (m.Compacted.Head.Ssts) out "outputs"
              Expect.equal m.L0 baseManifest.L0 "L0 untouched"
              Expect.equal m.L0LastCompacted None "no marker"
              Expect.isError (Compaction.finish m s out) "twice"
          }

          test "empty output adds no SR; a non-source existing destination is refused" {
              let m =
                  Compaction.finish baseManifest (spec [] [ 3u; 1u ] 1u) []
                  |> Result.defaultWith failtest

              Expect.equal (m.Compacted |> List.map (fun r -> r.Id)) [ 5u ] "everything dropped"
              Expect.isError (Compaction.finish baseManifest (spec l0Ids [] 3u) []) "would drop SR 3"
          }

          testPropN 300 "finish then finish again is always an error; sources always gone"
          <| Prop.forAll (Arb.fromGen SizeTieredProps.manifestGen) (fun m ->
              let o =
                  { SizeTiered.defaultOptions with
                      MinSources = 2 }

              SizeTiered.propose o m []
              |> List.truncate 1
              |> List.forall (fun s ->
                  let out = [ handle (ulidAt 5000L 1UL) 1UL ]

                  match Compaction.finish m s out with
                  | Error e -> failtest e
                  | Ok m' ->
                      let gone =
                          s.L0 |> List.forall (fun u -> m'.L0 |> List.forall (fun h -> h.Id <> u))
                          && s.SortedRuns
                             |> List.forall (fun i ->
                                 i = s.Destination || m'.Compacted |> List.forall (fun r -> r.Id <> i))

                      let ordered =
                          m'.Compacted |> List.pairwise |> List.forall (fun (a, b) -> a.Id > b.Id)

                      gone && ordered && Result.isError (Compaction.finish m' s out))) ]

// ---------------------------------------------------------------- concurrent updates (CAS)

type private Party =
    | WriterPublish
    | WriterWrite
    | WriterPoll
    | CompactorRefresh
    | CompactorPlan
    | CompactorFinish
    | CompactorWrite
    | AddCheckpoint

type private World =
    { Store: Manifest list // newest first; id = length
      WView: Manifest
      WBase: int
      WPending: bool
      CView: Manifest
      CBase: int
      CJob: CompactionSpec option
      CDirty: (CompactionSpec * SstHandle list) option
      LiveL0: Set<Ulid>
      LiveSr: Set<Ulid>
      Checkpoints: Set<Uuid>
      Counter: uint64
      Seq: uint64 }

let private latestId (w: World) = w.Store.Length

let private mint (w: World) =
    let n = w.Counter + 1UL
    ulidAt (int64 (10_000UL + n)) n, { w with Counter = n }

let private srSsts (m: Manifest) =
    m.Compacted
    |> List.collect (fun r -> r.Ssts)
    |> List.map (fun h -> h.Id)
    |> Set.ofList

/// Checks a newly stored version against the expected live sets; throws on violation.
let private checkStored (w: World) (writtenBy: string) =
    let v = w.Store.Head
    let l0 = v.L0 |> List.map (fun h -> h.Id)
    let ts = l0 |> List.map Ulid.timestampMs

    if Set.ofList l0 <> w.LiveL0 || l0.Length <> w.LiveL0.Count then
        failtestf "%s wrote L0 %A, expected %A" writtenBy l0 w.LiveL0

    if ts <> List.sortDescending ts then
        failtestf "L0 not newest first"

    if srSsts v <> w.LiveSr then
        failtestf "%s wrote SR SSTs %A, expected %A" writtenBy (srSsts v) w.LiveSr

    if v.Compacted |> List.pairwise |> List.exists (fun (a, b) -> a.Id <= b.Id) then
        failtestf "SR ids not strictly descending"

    if v.Checkpoints |> List.map (fun c -> c.Id) |> Set.ofList <> w.Checkpoints then
        failtestf "%s lost a checkpoint" writtenBy

let private step (w: World) (p: Party) : World =
    let latest = w.Store.Head

    match p with
    | WriterPublish ->
        let id, w = mint w
        let seq = w.Seq + 1UL

        let pub: Manifest.L0Publish =
            { Sst = handle id 10UL
              ReplayAfterWalId = seq
              LastTick = int64 seq
              LastSeq = seq
              OldestSnapshotSeq = None }

        match Manifest.publishL0 seq pub w.WView with
        | Ok v ->
            { w with
                WView = v
                WPending = true
                Seq = seq }
        | Error e -> failtestf "publish: %A" e
    | WriterWrite when w.WPending ->
        if w.WBase = latestId w then
            let stored =
                { w with
                    Store = w.WView :: w.Store
                    WBase = latestId w + 1
                    WPending = false }

            let mine = w.WView.L0 |> List.map (fun h -> h.Id) |> Set.ofList

            let w =
                { stored with
                    LiveL0 = Set.union w.LiveL0 mine }

            checkStored w "writer"
            w
        else
            { w with
                WView = Manifest.mergeForWriter w.WView latest
                WBase = latestId w }
    | WriterPoll ->
        { w with
            WView = Manifest.mergeForWriter w.WView latest
            WBase = latestId w }
    | CompactorRefresh when w.CDirty.IsNone ->
        { w with
            CView = Manifest.mergeForCompactor w.CView latest
            CBase = latestId w }
    | CompactorPlan when w.CJob.IsNone && w.CDirty.IsNone ->
        let o =
            { SizeTiered.defaultOptions with
                MinSources = 2
                MaxSources = 3 }

        { w with
            CJob = SizeTiered.propose o w.CView [] |> List.tryHead }
    | CompactorFinish when w.CDirty.IsNone ->
        match w.CJob with
        | None -> w
        | Some s ->
            let id, w = mint w
            let out = [ handle id 10UL ]

            match Compaction.finish w.CView s out with
            | Error e -> failtestf "the compactor's own view lost its sources: %s" e
            | Ok v ->
                if Result.isOk (Compaction.finish v s out) then
                    failtest "finished twice"

                { w with
                    CView = v
                    CJob = None
                    CDirty = Some(s, out) }
    | CompactorWrite ->
        match w.CDirty with
        | None -> w
        | Some(s, out) ->
            if w.CBase = latestId w then
                let consumedSr =
                    latest.Compacted
                    |> List.filter (fun r -> List.contains r.Id s.SortedRuns)
                    |> List.collect (fun r -> r.Ssts)
                    |> List.map (fun h -> h.Id)

                let w =
                    { w with
                        Store = w.CView :: w.Store
                        CBase = latestId w + 1
                        CDirty = None
                        LiveL0 = Set.difference w.LiveL0 (Set.ofList s.L0)
                        LiveSr = Set.union (Set.difference w.LiveSr (Set.ofList consumedSr)) (Set.ofList (ids out)) }

                let v = w.Store.Head

                if
                    (v.ReplayAfterWalId, v.WalIdLastSeen, v.LastL0Seq, v.LastL0ClockTick, v.WriterEpoch)
                    <> (latest.ReplayAfterWalId,
                        latest.WalIdLastSeen,
                        latest.LastL0Seq,
                        latest.LastL0ClockTick,
                        latest.WriterEpoch)
                then
                    failtest "the compactor changed writer scalars"

                checkStored w "compactor"
                w
            else
                { w with
                    CView = Manifest.mergeForCompactor w.CView latest
                    CBase = latestId w }
    | AddCheckpoint ->
        let n = w.Counter + 1UL

        let c: Checkpoint =
            { Id = { High = n; Low = n }
              ManifestId = uint64 (latestId w + 1)
              ExpireTimeS = None
              CreateTimeS = 0u
              Name = None }

        let w =
            { w with
                Store = Manifest.addCheckpoint c latest :: w.Store
                Counter = n
                Checkpoints = w.Checkpoints.Add c.Id }

        checkStored w "checkpointer"
        w
    | _ -> w

let private world0 =
    { Store = [ Manifest.initial ]
      WView = Manifest.initial
      WBase = 1
      WPending = false
      CView = Manifest.initial
      CBase = 1
      CJob = None
      CDirty = None
      LiveL0 = Set.empty
      LiveSr = Set.empty
      Checkpoints = Set.empty
      Counter = 0UL
      Seq = 0UL }

let private partyGen: Gen<Party> =
    Gen.frequency
        [ 4, Gen.constant WriterPublish
          4, Gen.constant WriterWrite
          1, Gen.constant WriterPoll
          2, Gen.constant CompactorRefresh
          2, Gen.constant CompactorPlan
          2, Gen.constant CompactorFinish
          3, Gen.constant CompactorWrite
          1, Gen.constant AddCheckpoint ]

/// Runs the steps, then lets both parties finish their pending writes.
let private runWorld (steps: Party list) : World =
    let w = steps |> List.fold step world0

    let rec drain (w: World) n =
        if n = 0 then
            failtest "did not converge"
        elif w.WPending then
            drain (step w WriterWrite) (n - 1)
        elif w.CDirty.IsSome then
            drain (step w CompactorWrite) (n - 1)
        else
            w

    drain w 100

let private casTests =
    testList
        "concurrent manifest updates"
        [ testPropN 600 "merges never lose an L0, SR or checkpoint and never resurrect a compacted L0"
          <| Prop.forAll (Arb.fromGen (Gen.listOfLength 60 partyGen)) (fun steps ->
              let w = runWorld steps
              // every L0 the writer created is either live in the latest version or was compacted
              let latest = w.Store.Head
              Set.ofList (ids latest.L0) = w.LiveL0 && srSsts latest = w.LiveSr)

          test "a compaction committed while the writer publishes keeps both changes" {
              let w =
                  runWorld
                      [ for _ in 1..3 do
                            WriterPublish
                            WriterWrite
                        CompactorRefresh
                        CompactorPlan
                        CompactorFinish
                        WriterPublish
                        WriterWrite // writer stores L0 #4 first
                        CompactorWrite // conflict: merge, then retry in drain
                        WriterPublish ]

              let latest = w.Store.Head
              Expect.equal latest.L0.Length 2 "the two L0s published after the plan"
              Expect.equal latest.Compacted.Length 1 "the compacted run"
              Expect.isSome latest.L0LastCompacted "marker set"
          } ]

let allTests = testList "Compaction" [ validationTests; finishTests; casTests ]
