/// The size-tiered planner (SPEC §5.9; §9 invariant 29).
module Slate.Properties.SizeTieredProps

open Expecto
open FsCheck
open FsCheck.FSharp
open Slate.Model
open Slate.Properties.TestUtil
open Slate.Properties.CompactionStateProps

// ---------------------------------------------------------------- generators

let private sizeGen: Gen<uint64> =
    Gen.frequency
        [ 3, Gen.choose (1, 8) |> Gen.map uint64
          2, Gen.choose (1, 200) |> Gen.map uint64
          1, Gen.elements [ 0UL; 1000UL; 1_000_000UL ] ]

/// Manifests with 0..12 L0s (ULIDs newest first) and 0..10 SRs (ids descending, with gaps),
/// 1..3 SSTs per SR.
let manifestGen: Gen<Manifest> =
    gen {
        let! nl = Gen.choose (0, 12)
        let! l0Sizes = Gen.listOfLength nl sizeGen

        let l0 =
            l0Sizes
            |> List.mapi (fun i s -> handle (ulidAt (int64 (1000 + nl - i)) (uint64 i)) s)

        let! ns = Gen.choose (0, 10)
        let! gaps = Gen.listOfLength ns (Gen.frequency [ 4, Gen.constant 1; 1, Gen.choose (2, 5) ])
        let ids = gaps |> List.scan (+) 0 |> List.tail |> List.map uint32 |> List.rev

        let! srs =
            ids
            |> List.map (fun id ->
                gen {
                    let! n = Gen.choose (1, 3)
                    let! sizes = Gen.listOfLength n sizeGen

                    return
                        { Id = id
                          Ssts =
                            sizes
                            |> List.mapi (fun j s -> handle (ulidAt 500L (uint64 (int id * 10 + j))) s) }
                })
            |> Gen.sequenceToList

        return
            { Manifest.initial with
                L0 = l0
                Compacted = srs }
    }

let private optionsGen: Gen<SizeTieredOptions> =
    gen {
        let! minS = Gen.choose (2, 5)
        let! extra = Gen.choose (0, 4)
        let! ratio = Gen.elements [ 1.0; 2.0; 4.0; 10.0 ]
        let! conc = Gen.choose (1, 5)

        return
            { MinSources = minS
              MaxSources = minS + extra
              SizeRatio = ratio
              MaxConcurrent = conc }
    }

/// Active jobs: earlier proposals under other options, and arbitrary (even overlapping) specs.
let private activeGen (m: Manifest) : Gen<Compaction list> =
    gen {
        let! o = optionsGen
        let! k = Gen.choose (0, 3)
        let planned = SizeTiered.propose o m [] |> List.truncate k

        let! arbitrary =
            Gen.frequency
                [ 3, Gen.constant []
                  1,
                  gen {
                      let! l0 = Gen.subListOf (m.L0 |> List.map (fun h -> h.Id))
                      let! srs = Gen.subListOf (m.Compacted |> List.map (fun sr -> sr.Id))
                      let! d = Gen.choose (0, 30)

                      return
                          [ { L0 = l0
                              SortedRuns = srs
                              Destination = uint32 d } ]
                  } ]

        let! statuses =
            Gen.listOfLength
                (planned.Length + arbitrary.Length)
                (Gen.elements
                    [ CompactionStatus.Submitted
                      CompactionStatus.Running
                      CompactionStatus.Completed
                      CompactionStatus.Failed ])

        return
            planned @ arbitrary
            |> List.mapi (fun i spec ->
                { Compaction.submitted (ulidAt 900L (uint64 i)) spec with
                    Status = statuses[i] })
    }

let private caseGen: Gen<Manifest * Compaction list * SizeTieredOptions> =
    gen {
        let! m = manifestGen
        let! active = activeGen m
        let! o = Gen.frequency [ 1, Gen.constant SizeTiered.defaultOptions; 2, optionsGen ]
        return m, active, o
    }

// ---------------------------------------------------------------- checks

let private claims (m: Manifest) (s: CompactionSpec) : Set<string> =
    let s = CompactionSpec.resolveDestination m s

    Set.ofList (
        (s.L0 |> List.map (sprintf "L0 %O"))
        @ (s.Destination :: s.SortedRuns |> List.map (sprintf "SR %d"))
    )

/// Every planner obligation of invariant 29 (plus validity under `Compaction.start`); an error
/// message or None.
let plannerViolation (o: SizeTieredOptions) (m: Manifest) (jobs: Compaction list) (props: CompactionSpec list) =
    let active = jobs |> List.filter CompactorState.isActive

    let srSize id =
        m.Compacted |> List.find (fun sr -> sr.Id = id) |> SizeTiered.runSize |> float

    let problems =
        [ if props.Length > max 0 (o.MaxConcurrent - active.Length) then
              yield "more than max_concurrent jobs"
          if
              (active |> List.filter (fun c -> CompactionSpec.hasL0 c.Spec)).Length > 0
              && props |> List.exists CompactionSpec.hasL0
          then
              yield "an L0 proposal beside an active L0 job"
          if (props |> List.filter CompactionSpec.hasL0).Length > 1 then
              yield "two L0 proposals"

          for p in props do
              let n = p.L0.Length + p.SortedRuns.Length

              if n < o.MinSources || n > o.MaxSources then
                  yield sprintf "%d sources outside [%d, %d]" n o.MinSources o.MaxSources

              if not (List.isEmpty p.L0) && not (List.isEmpty p.SortedRuns) then
                  yield "mixed L0 and SR proposal"

              match Compaction.validateSpec m p with
              | Error e -> yield "invalid shape: " + e
              | Ok() -> ()

              // SR threshold: each SR ≤ ratio × the smallest before it
              let ratioOk =
                  p.SortedRuns
                  |> List.map srSize
                  |> List.scan
                      (fun (ok, mn) s -> (ok && (mn = infinity || s <= o.SizeRatio * mn)), min mn s)
                      (true, infinity)
                  |> List.forall fst

              if not ratioOk then
                  yield "SR run violates the size ratio"

          // pairwise disjoint, and disjoint from active jobs
          let all = (active |> List.map (fun c -> c.Spec)) @ props

          for i in active.Length .. all.Length - 1 do
              for j in 0 .. i - 1 do
                  if not (Set.intersect (claims m all[i]) (claims m all[j])).IsEmpty then
                      yield sprintf "proposal %d shares a source or destination with job %d" i j

          // each proposal starts under the validation of §5.8 given the jobs before it
          yield!
              props
              |> List.indexed
              |> List.fold
                  (fun (jobsSoFar, errs) (i, p) ->
                      let job = Compaction.submitted (ulidAt 999L (uint64 i)) p

                      match Compaction.start m jobsSoFar job with
                      | Ok j -> jobsSoFar @ [ j ], errs
                      | Error(_, why) -> jobsSoFar, errs @ [ sprintf "proposal %d fails validation: %s" i why ])
                  (jobs, [])
              |> snd ]

    List.tryHead problems

// ---------------------------------------------------------------- tests

let private l0s (n: int) =
    List.init n (fun i -> handle (ulidAt (int64 (100 + n - i)) (uint64 i)) 10UL)

let private srs (sizes: (uint32 * uint64) list) =
    sizes
    |> List.map (fun (id, s) ->
        { Id = id
          Ssts = [ handle (ulidAt 50L (uint64 id)) s ] })

let private examples =
    testList
        "examples"
        [ test "fewer than min_sources L0s: nothing" {
              let m = { Manifest.initial with L0 = l0s 3 }
              Expect.isEmpty (SizeTiered.propose SizeTiered.defaultOptions m []) "3 L0"
          }

          test "four L0s and no SR: one L0 job into SR 0" {
              let m = { Manifest.initial with L0 = l0s 4 }

              Expect.equal
                  (SizeTiered.propose SizeTiered.defaultOptions m [])
                  [ { L0 = m.L0 |> List.map (fun h -> h.Id)
                      SortedRuns = []
                      Destination = 0u } ]
                  "all four"
          }

          test "ten L0s: the oldest eight, destination above the highest SR" {
              let m =
                  { Manifest.initial with
                      L0 = l0s 10
                      Compacted = srs [ 5u, 10_000UL; 2u, 10_000UL ] }

              match SizeTiered.propose SizeTiered.defaultOptions m [] with
              | [ p ] ->
                  Expect.equal p.L0 (m.L0 |> List.skip 2 |> List.map (fun h -> h.Id)) "oldest 8"
                  Expect.equal p.Destination 6u "highest + 1"
              | ps -> failtestf "expected one proposal, got %A" ps
          }

          test "SRs of similar size compact into the lowest; a much larger one stops the run" {
              let m =
                  { Manifest.initial with
                      Compacted = srs [ 9u, 10UL; 7u, 12UL; 4u, 9UL; 3u, 11UL; 1u, 1000UL ] }

              Expect.equal
                  (SizeTiered.propose SizeTiered.defaultOptions m [])
                  [ { L0 = []
                      SortedRuns = [ 9u; 7u; 4u; 3u ]
                      Destination = 3u } ]
                  "four similar SRs"
          }

          test "an active job on the oldest L0 blocks L0 proposals; max_concurrent caps proposals" {
              let m = { Manifest.initial with L0 = l0s 6 }
              let oldest = List.last m.L0

              let job =
                  Compaction.submitted
                      (ulidAt 1L 1UL)
                      { L0 = [ oldest.Id ]
                        SortedRuns = []
                        Destination = 0u }

              Expect.isEmpty (SizeTiered.propose SizeTiered.defaultOptions m [ job ]) "conflict"

              let full =
                  List.init 4 (fun i ->
                      Compaction.submitted
                          (ulidAt 1L (uint64 i))
                          { L0 = []
                            SortedRuns = []
                            Destination = 100u + uint32 i })

              Expect.isEmpty (SizeTiered.propose SizeTiered.defaultOptions m full) "4 active"

              let finished =
                  full
                  |> List.map (fun c ->
                      { c with
                          Status = CompactionStatus.Completed })

              Expect.isNonEmpty (SizeTiered.propose SizeTiered.defaultOptions m finished) "finished jobs do not count"
          }

          test "sstSize is index_offset + index_len" {
              let h =
                  { handle (ulidAt 1L 1UL) 0UL with
                      Info =
                          { (infoOfSize 100UL) with
                              IndexLen = 23UL } }

              Expect.equal (SizeTiered.sstSize h) 123UL "sum"
          } ]

let allTests =
    testList
        "SizeTiered"
        [ examples

          testPropN 1500 "proposals satisfy invariant 29 and pass validation"
          <| Prop.forAll (Arb.fromGen caseGen) (fun (m, jobs, o) ->
              let props = SizeTiered.propose o m jobs

              match plannerViolation o m jobs props with
              | None -> true
              | Some msg -> failtestf "%s\noptions %A\nproposals %A\njobs %A" msg o props jobs)

          testPropN 300 "deterministic"
          <| Prop.forAll (Arb.fromGen caseGen) (fun (m, jobs, o) ->
              SizeTiered.propose o m jobs = SizeTiered.propose o m jobs)

          testPropN 500 "with no active jobs, enough L0s always yield an L0 proposal unless backpressure holds"
          <| Prop.forAll (Arb.fromGen manifestGen) (fun m ->
              let o = SizeTiered.defaultOptions
              let props = SizeTiered.propose o m []

              m.L0.Length < o.MinSources
              || props |> List.exists CompactionSpec.hasL0
              || not m.Compacted.IsEmpty) ]
