/// The `.compactions` codec (SPEC §4.16, §9.8) and compactor-state helpers; also the small
/// fixtures (ULIDs, SST handles) shared by the compaction and GC property files.
module Slate.Properties.CompactionStateProps

open System
open System.IO
open Expecto
open FsCheck
open FsCheck.FSharp
open Slate.Model
open Slate.Properties.TestUtil

// ---------------------------------------------------------------- shared fixtures

/// A ULID with timestamp `ms` and low bits `n`.
let ulidAt (ms: int64) (n: uint64) : Ulid = Ulid.create ms 0us n

/// A compacted-SST info whose size estimate (`index_offset + index_len`) is `size`.
let infoOfSize (size: uint64) : SsTableInfo =
    { FirstEntry = None
      LastEntry = None
      IndexOffset = size
      IndexLen = 0UL
      FilterOffset = 0UL
      FilterLen = 0UL
      Compression = CompressionCodec.None
      SstType = SstType.Compacted
      StatsOffset = 0UL
      StatsLen = 0UL
      FilterFormat = FilterFormat.Legacy }

/// An SST handle of a given size estimate.
let handle (id: Ulid) (size: uint64) : SstHandle =
    { Id = id
      Info = infoOfSize size
      FormatVersion = 2us
      VisibleRange = None }

// ---------------------------------------------------------------- generators

let private u64Gen: Gen<uint64> =
    Gen.frequency
        [ 3, Gen.choose (0, 100_000) |> Gen.map uint64
          1, Gen.elements [ 0UL; 1UL; UInt64.MaxValue ]
          1,
          Gen.map2
              (fun (a: int) (b: int) -> (uint64 (uint32 a) <<< 32) ||| uint64 (uint32 b))
              (Gen.choose (0, Int32.MaxValue))
              (Gen.choose (0, Int32.MaxValue)) ]

let private ulidGen: Gen<Ulid> =
    Gen.map2 (fun h l -> { Ulid.High = h; Low = l }) u64Gen u64Gen

let private specGen: Gen<CompactionSpec> =
    gen {
        let! nl = Gen.choose (0, 5)
        let! l0 = Gen.listOfLength nl ulidGen
        let! ns = Gen.choose (0, 5)
        let! srs = Gen.listOfLength ns (Gen.choose (0, 1000) |> Gen.map uint32)
        // v1 does not store the destination: decode derives min SR id, or 0 for L0-only
        return
            { L0 = l0
              SortedRuns = srs
              Destination = (if List.isEmpty srs then 0u else List.min srs) }
    }

let private statusGen: Gen<CompactionStatus> =
    Gen.elements
        [ CompactionStatus.Submitted
          CompactionStatus.Running
          CompactionStatus.Completed
          CompactionStatus.Failed ]

let private jobGen: Gen<Compaction> =
    gen {
        let! id = ulidGen
        let! spec = specGen
        let! status = statusGen
        let! m = ManifestCodecProps.manifestGen
        let! take = Gen.choose (0, 3)

        return
            { Id = id
              Spec = spec
              Status = status
              OutputSsts = Manifest.allSsts m |> List.truncate take }
    }

let private stateGen: Gen<CompactorState> =
    gen {
        let! epoch = u64Gen
        let! n = Gen.choose (0, 5)
        let! jobs = Gen.listOfLength n jobGen

        return
            { CompactorEpoch = epoch
              Compactions = jobs }
    }

let private trimKeepsOne =
    Prop.forAll (Arb.fromGen stateGen) (fun s ->
        let t = CompactorState.trim s
        let finished = t.Compactions |> List.filter (CompactorState.isActive >> not)
        let allFinished = s.Compactions |> List.filter (CompactorState.isActive >> not)

        CompactorState.active t = CompactorState.active s
        && finished.Length = min 1 allFinished.Length
        && (finished
            |> List.forall (fun f -> allFinished |> List.forall (fun o -> o.Id <= f.Id))))

// ---------------------------------------------------------------- hand-built buffers

let private withVersion (v: uint16) (body: byte[]) : byte[] =
    Array.append [| byte (v >>> 8); byte v |] body

/// A file with one job whose spec table is `specFields` under union tag `tag`.
let private oneJob (v: uint16) (tag: byte) (specFields: FbField list) (status: byte) : byte[] =
    FlatBuf.build
        [ FbField.U64(0, 7UL)
          FbField.Tables(
              1,
              [ [ FbField.Table(0, ManifestCodec.ulidFields (ulidAt 1000L 1UL))
                  FbField.U8(1, tag)
                  FbField.Table(2, specFields)
                  FbField.U8(3, status) ] ]
          ) ]
    |> withVersion v

let private ulids (xs: Ulid list) = xs |> List.map ManifestCodec.ulidFields

let private decodeOk (bytes: byte[]) =
    CompactionStateCodec.decode bytes |> okOrFail

let private isInvalid (r: Result<'a, DecodeError>) =
    match r with
    | Error(DecodeError.Invalid _) -> true
    | _ -> false

// ---------------------------------------------------------------- golden files

let private goldenDir () =
    Path.Combine(compatDir (), "compacted", "db")

let private goldenStates () =
    Directory.GetFiles(Path.Combine(goldenDir (), "compactions"), "*.compactions")
    |> Array.sort
    |> Array.map (fun f -> Path.GetFileName f, File.ReadAllBytes f)

let private goldenTests =
    testList
        "golden (SlateDB 0.12.1 compacted case)"
        [ test "every .compactions file decodes, and re-encodes to the same state" {
              let files = goldenStates ()
              Expect.equal files.Length 24 "24 compactor-state files"

              for name, bytes in files do
                  let st =
                      match CompactionStateCodec.decode bytes with
                      | Ok s -> s
                      | Error e -> failtestf "%s: %s" name (DecodeError.describe e)

                  let again = CompactionStateCodec.encode st |> decodeOk
                  Expect.equal again st (name + " round-trips")
          }

          test "field values pinned" {
              let files = goldenStates () |> Map.ofArray

              let get n =
                  files[sprintf "%020d.compactions" n] |> decodeOk

              let s1 = get 1

              Expect.equal
                  s1
                  { CompactorEpoch = 0UL
                    Compactions = [] }
                  "file 1 is the initial state"

              Expect.equal (get 2).CompactorEpoch 1UL "the compactor fenced the state at epoch 1"

              let s4 = get 4
              Expect.equal s4.Compactions.Length 1 "one job"
              let j = s4.Compactions.Head
              Expect.equal j.Status CompactionStatus.Submitted "status omitted = Submitted"
              Expect.equal j.Spec.L0.Length 8 "8 L0 sources (max_sources)"
              Expect.isEmpty j.Spec.SortedRuns "L0-only"
              Expect.equal j.Spec.Destination 0u "L0-only destination defaults to 0"
              Expect.isEmpty j.OutputSsts "no outputs yet"

              let s7 = get 7
              Expect.equal s7.Compactions.Head.Status CompactionStatus.Completed "completed"
              Expect.isNonEmpty s7.Compactions.Head.OutputSsts "outputs recorded"

              let s24 = get 24
              Expect.equal s24.Compactions.Length 1 "trimmed to the most recent finished job"
              let j = s24.Compactions.Head
              Expect.equal j.Status CompactionStatus.Completed "completed"
              Expect.equal j.Spec.SortedRuns.Length 4 "4 SR sources"
              Expect.isEmpty j.Spec.L0 "SR-only"
              Expect.equal j.Spec.Destination (List.min j.Spec.SortedRuns) "destination = lowest SR"

              Expect.equal j.Spec.SortedRuns (List.sortDescending j.Spec.SortedRuns) "sorted runs highest first"
          }

          test "completed outputs and L0 sources are SSTs the manifests reference" {
              let manifests =
                  Directory.GetFiles(Path.Combine(goldenDir (), "manifest"), "*.manifest")
                  |> Array.map (File.ReadAllBytes >> ManifestCodec.decode >> okOrFail)

              let l0Ids =
                  manifests |> Seq.collect (fun m -> m.L0) |> Seq.map (fun h -> h.Id) |> Set.ofSeq

              let srIds =
                  manifests
                  |> Seq.collect (fun m -> m.Compacted |> List.collect (fun sr -> sr.Ssts))
                  |> Seq.map (fun h -> h.Id)
                  |> Set.ofSeq

              for name, bytes in goldenStates () do
                  for j in (decodeOk bytes).Compactions do
                      for u in j.Spec.L0 do
                          Expect.isTrue (l0Ids.Contains u) (sprintf "%s: L0 source %O was an L0" name u)

                      if j.Status = CompactionStatus.Completed then
                          for h in j.OutputSsts do
                              Expect.isTrue (srIds.Contains h.Id) (sprintf "%s: output %O is in a sorted run" name h.Id)

                          // L0 sources newest first: ULID timestamps non-increasing
                          let ts = j.Spec.L0 |> List.map Ulid.timestampMs
                          Expect.equal ts (List.sortDescending ts) (name + ": L0 sources newest first")
          } ]

// ---------------------------------------------------------------- tests

let allTests =
    testList
        "CompactionState"
        [ testPropN 300 "encode/decode round-trip"
          <| Prop.forAll (Arb.fromGen stateGen) (fun s ->
              CompactionStateCodec.encode s |> CompactionStateCodec.decode = Ok s)

          testPropN 300 "decode never throws on random bytes"
          <| Prop.forAll (Arb.fromGen (Gen.arrayOf (Gen.choose (0, 255) |> Gen.map byte))) (fun bytes ->
              CompactionStateCodec.decode bytes |> ignore
              // with a plausible version prefix, too
              CompactionStateCodec.decode (withVersion 1us bytes) |> ignore
              true)

          testPropN 300 "decode never throws on mutated or truncated valid files"
          <| Prop.forAll
              (Arb.fromGen (Gen.zip3 stateGen (Gen.choose (0, Int32.MaxValue)) (Gen.choose (0, 7))))
              (fun (s, pos, bit) ->
                  let bytes = CompactionStateCodec.encode s
                  let flipped = Array.copy bytes
                  let p = pos % flipped.Length
                  flipped[p] <- flipped[p] ^^^ (1uy <<< bit)
                  CompactionStateCodec.decode flipped |> ignore
                  CompactionStateCodec.decode (Array.truncate p bytes) |> ignore
                  true)

          test "version prefix: 1 written; unknown versions refused" {
              let bytes = CompactionStateCodec.encode CompactorState.initial
              Expect.equal (bytes[0], bytes[1]) (0uy, 1uy) "u16be 1"

              match CompactionStateCodec.decode (Array.append [| 0uy; 3uy |] (Array.skip 2 bytes)) with
              | Error(DecodeError.UnsupportedVersion(_, 3)) -> ()
              | r -> failtestf "expected UnsupportedVersion, got %A" r

              Expect.isError (CompactionStateCodec.decode [| 0uy |]) "truncated"
          }

          test "deprecated slot 0 read as L0 when slot 2 is absent; slot 2 wins otherwise" {
              let a = [ ulidAt 5L 1UL; ulidAt 4L 2UL ]
              let b = [ ulidAt 9L 3UL ]
              let s = decodeOk (oneJob 1us 1uy [ FbField.Tables(0, ulids a) ] 0uy)
              Expect.equal s.Compactions.Head.Spec.L0 a "deprecated ssts"

              let s =
                  decodeOk (oneJob 1us 1uy [ FbField.Tables(0, ulids a); FbField.Tables(2, ulids b) ] 0uy)

              Expect.equal s.Compactions.Head.Spec.L0 b "l0_view_ids"
              Expect.equal s.CompactorEpoch 7UL "epoch"
          }

          test "version 2: destination from slot 4; drain specs and segments refused" {
              let s =
                  decodeOk (oneJob 2us 1uy [ FbField.Tables(2, ulids [ ulidAt 1L 1UL ]); FbField.U32(4, 12u) ] 1uy)

              Expect.equal s.Compactions.Head.Spec.Destination 12u "stored destination"
              Expect.equal s.Compactions.Head.Status CompactionStatus.Running "status"

              let s =
                  decodeOk (oneJob 2us 1uy [ FbField.U32s(1, [| 5u; 3u |]); FbField.Bytes(3, [||]) ] 0uy)

              Expect.equal s.Compactions.Head.Spec.Destination 3u "no slot 4: lowest SR; empty segment accepted"

              Expect.isTrue (isInvalid (CompactionStateCodec.decode (oneJob 2us 2uy [] 0uy))) "DrainSegmentSpec"

              Expect.isTrue
                  (isInvalid (CompactionStateCodec.decode (oneJob 2us 1uy [ FbField.Bytes(3, [| 1uy |]) ] 0uy)))
                  "segment"
          }

          test "bad status, unknown spec type and missing spec are Invalid" {
              Expect.isTrue (isInvalid (CompactionStateCodec.decode (oneJob 1us 1uy [] 4uy))) "status 4"
              Expect.isTrue (isInvalid (CompactionStateCodec.decode (oneJob 1us 9uy [] 0uy))) "spec type 9"

              let noSpec =
                  FlatBuf.build
                      [ FbField.Tables(1, [ [ FbField.Table(0, ManifestCodec.ulidFields (ulidAt 1L 1UL)) ] ]) ]
                  |> withVersion 1us

              Expect.isTrue (isInvalid (CompactionStateCodec.decode noSpec)) "no spec"
              let noJobs = FlatBuf.build [ FbField.U64(0, 1UL) ] |> withVersion 1us
              Expect.isError (CompactionStateCodec.decode noJobs) "recent_compactions is required"
          }

          test "L0-only destination is recomputed against the manifest" {
              let spec =
                  { L0 = [ ulidAt 1L 1UL ]
                    SortedRuns = []
                    Destination = 0u }

              let m =
                  { Manifest.initial with
                      Compacted = [ { Id = 3u; Ssts = [] }; { Id = 1u; Ssts = [] } ] }

              Expect.equal (CompactionSpec.resolveDestination m spec).Destination 4u "highest + 1"
              Expect.equal (CompactionSpec.resolveDestination Manifest.initial spec).Destination 0u "no SRs"

              Expect.equal
                  (CompactionSpec.resolveDestination m { spec with Destination = 9u }).Destination
                  9u
                  "a stored destination above every SR is kept"

              let withSr =
                  { spec with
                      SortedRuns = [ 3u; 1u ]
                      Destination = 7u }

              Expect.equal (CompactionSpec.resolveDestination m withSr).Destination 1u "lowest source SR"
          }

          testPropN 200 "trim keeps active jobs and only the most recent finished one" trimKeepsOne

          // CI found this one: two finished jobs with the same id both survived the trim
          testPropSeed
              (6435311674309394539UL, 2501473112480010723UL, Some 8)
              "trim keeps one finished job when ids repeat (regression seed)"
              trimKeepsOne

          testPropN 200 "resetRunning leaves no Running job and changes nothing else"
          <| Prop.forAll (Arb.fromGen stateGen) (fun s ->
              let r = CompactorState.resetRunning s

              r.Compactions |> List.forall (fun c -> c.Status <> CompactionStatus.Running)
              && List.map (fun (c: Compaction) -> c.Id, c.Spec) r.Compactions = List.map
                  (fun (c: Compaction) -> c.Id, c.Spec)
                  s.Compactions)

          goldenTests ]
