module Slate.Properties.SequenceTrackerProps

open System
open System.IO
open Expecto
open FsCheck
open FsCheck.FSharp
open Slate.Model
open Slate.Properties.TestUtil

/// Non-decreasing (seq, time) pairs whose deltas-of-deltas fit the version-1 encoding: deltas
/// in 0..2^30 (so every dod is within ±2^30), starting anywhere in the u64 / i64 ranges.
let private trackerGen: Gen<SequenceTracker> =
    let delta =
        Gen.frequency
            [ 3, Gen.constant 0L
              4, Gen.choose (0, 70) |> Gen.map int64
              2, Gen.choose (0, 3000) |> Gen.map int64
              1, Gen.choose (0, 1 <<< 30) |> Gen.map int64 ]

    gen {
        let! n = Gen.frequency [ 1, Gen.constant 0; 1, Gen.constant 1; 6, Gen.choose (2, 60) ]

        let! seq0 =
            Gen.frequency
                [ 4, Gen.choose (0, 100_000) |> Gen.map uint64
                  1, Gen.elements [ UInt64.MaxValue - 1_000_000_000_000UL; (1UL <<< 63) - 5UL; 1UL <<< 40 ] ]

        let! t0 =
            Gen.frequency
                [ 4, Gen.constant 1_795_470_000L
                  1, Gen.elements [ -5_000L; 0L; Int64.MaxValue - (1L <<< 40) ] ]

        let! dSeq = Gen.listOfLength (max 0 (n - 1)) delta
        let! dTime = Gen.listOfLength (max 0 (n - 1)) delta
        let seqs = dSeq |> List.scan (fun s d -> s + uint64 d) seq0
        let times = dTime |> List.scan (fun t d -> t + d) t0

        return
            if n = 0 then
                SequenceTracker.empty
            else
                { Seqs = Array.ofList seqs
                  Times = Array.ofList times }
    }

let private nonDecreasing (t: SequenceTracker) =
    Array.pairwise t.Seqs |> Array.forall (fun (a, b) -> a <= b)
    && Array.pairwise t.Times |> Array.forall (fun (a, b) -> a <= b)

/// Applies `record` to every (seq, time) in order, starting from `t` with no last-kept time.
let private recordAll (t: SequenceTracker) (pairs: (uint64 * int64) list) : SequenceTracker =
    pairs
    |> List.fold (fun (t, last) (s, secs) -> SequenceTracker.record s secs last t) (t, None)
    |> fst

/// The folder holding `slatedb-0.12.1`, from SLATE_SHARED_DIR or by walking up.
let private compatRoot () : string option =
    let fromEnv =
        match Environment.GetEnvironmentVariable "SLATE_SHARED_DIR" with
        | null
        | "" -> None
        | d -> Some(Path.Combine(d, "compat"))

    let rec walk (dir: DirectoryInfo) =
        if isNull dir then
            None
        else
            let candidates =
                [ Path.Combine(dir.FullName, "shared", "compat")
                  Path.Combine(dir.FullName, "compat") ]

            match
                candidates
                |> List.tryFind (fun c -> Directory.Exists(Path.Combine(c, "slatedb-0.12.1")))
            with
            | Some c -> Some c
            | None -> walk dir.Parent

    match fromEnv with
    | Some d when Directory.Exists d -> Some d
    | _ -> walk (DirectoryInfo AppContext.BaseDirectory)

let private golden1 =
    [| 1uy
       4uy
       0uy
       0uy
       0uy
       0uy
       0uy
       0uy
       4uy
       0uy
       0uy
       0uy
       0uy
       0uy
       0uy
       0uy
       4uy
       130uy
       120uy
       0uy
       122uy
       17uy
       167uy
       255uy
       248uy
       95uy
       4uy
       0uy
       0uy
       0uy
       0uy
       4uy
       0uy
       0uy
       0uy
       0uy
       0uy
       0uy
       0uy
       100uy
       198uy
       64uy |]

let allTests =
    testList
        "SequenceTracker"
        [ test "the empty tracker is the 13 bytes 01 00000000 00000000 00000000" {
              let blob = SequenceTracker.encode SequenceTracker.empty
              Expect.equal (Bytes.toHex blob) "01000000000000000000000000" "empty blob"
              Expect.equal (SequenceTracker.decode blob) (Ok SequenceTracker.empty) "decodes"
              Expect.equal Manifest.initial.SequenceTracker blob "initial manifest carries it"
          }

          test "SlateDB's version-1 vector (32-bit fallback) decodes and re-encodes byte-identically" {
              // seqs [4, 8, 1000000, 1000064], times [100, 200, 300, 400] (both fallback and 7-bit slots)
              let expected =
                  { Seqs = [| 4UL; 8UL; 1_000_000UL; 1_000_064UL |]
                    Times = [| 100L; 200L; 300L; 400L |] }

              Expect.equal (SequenceTracker.decode golden1) (Ok expected) "decode"
              Expect.equal (SequenceTracker.encode expected) golden1 "encode"
          }

          testProp "encode/decode round-trips non-decreasing trackers"
          <| Prop.forAll (Arb.fromGen trackerGen) (fun t -> SequenceTracker.decode (SequenceTracker.encode t) = Ok t)

          testProp "version 2 (64-bit fallback slot) is read"
          <| Prop.forAll (Arb.fromGen trackerGen) (fun t ->
              // with small dods the two versions differ only in the version byte
              let v1 = SequenceTracker.encode t
              let small = Array.pairwise t.Seqs |> Array.forall (fun (a, b) -> b - a <= 2000UL)
              let smallT = Array.pairwise t.Times |> Array.forall (fun (a, b) -> b - a <= 2000L)
              let v2 = Array.copy v1
              v2[0] <- 2uy
              not (small && smallT) || SequenceTracker.decode v2 = Ok t)

          testProp "any truncation of a blob is an error, never a shorter tracker"
          <| Prop.forAll (Arb.fromGen trackerGen) (fun t ->
              let blob = SequenceTracker.encode t

              [ 0 .. blob.Length - 1 ]
              |> List.forall (fun n ->
                  match SequenceTracker.decode (Array.sub blob 0 n) with
                  | Error _ -> true
                  | Ok _ -> false))

          testProp "random bytes never make decode throw"
          <| fun (bytes: byte[]) (v: bool) ->
              let bytes = if isNull bytes then [||] else Array.copy bytes

              if bytes.Length > 0 then
                  bytes[0] <- (if v then 1uy else 2uy)

              SequenceTracker.decode bytes |> ignore
              true

          test "a count larger than the stream allows is rejected without allocating" {
              let blob =
                  [| 1uy
                     0xFFuy
                     0xFFuy
                     0xFFuy
                     0x7Fuy
                     0x7Fuy
                     0xFFuy
                     0xFFuy
                     0xFFuy
                     0uy
                     0uy |]

              Expect.isError (SequenceTracker.decode blob) "absurd count"
          }

          test "unknown versions are UnsupportedVersion" {
              let blob = SequenceTracker.encode SequenceTracker.empty
              blob[0] <- 3uy

              match SequenceTracker.decode blob with
              | Error(DecodeError.UnsupportedVersion(_, 3)) -> ()
              | other -> failtestf "expected UnsupportedVersion, got %A" other
          }

          testProp "record keeps a pair only 60 s after the last kept one, the first always"
          <| Prop.forAll (Arb.fromGen (Gen.listOf (Gen.choose (0, 130)))) (fun gaps ->
              let times = gaps |> List.scan (fun t g -> t + int64 g) 1_700_000_000L
              let pairs = times |> List.mapi (fun i t -> uint64 (i * 3), t)
              let r = recordAll SequenceTracker.empty pairs

              // expected: greedy 60 s sampling
              let expected =
                  pairs
                  |> List.fold
                      (fun (acc, last) (s, t) ->
                          match last with
                          | Some l when t - l < 60L -> acc, last
                          | _ -> (s, t) :: acc, Some t)
                      ([], None)
                  |> fst
                  |> List.rev

              List.ofArray (Array.zip r.Seqs r.Times) = expected)

          test "a tracker decoded from a manifest keeps the first pair after open even if < 60 s" {
              let stored =
                  { Seqs = [| 10UL |]
                    Times = [| 1000L |] }

              let t, last = SequenceTracker.record 20UL 1010L None stored
              Expect.equal t.Seqs [| 10UL; 20UL |] "kept"
              Expect.equal last (Some 1010L) "last kept"
              let t2, last2 = SequenceTracker.record 30UL 1030L last t
              Expect.equal t2 t "skipped: 20 s after the last kept"
              Expect.equal last2 last "unchanged"
          }

          test "pairs going below the last stored pair are skipped" {
              let stored =
                  { Seqs = [| 10UL |]
                    Times = [| 1000L |] }

              Expect.equal (fst (SequenceTracker.record 5UL 2000L None stored)) stored "seq below"
              Expect.equal (fst (SequenceTracker.record 50UL 900L None stored)) stored "time below"
          }

          test "capacity 8192: the 8193rd pair halves the tracker keeping the first" {
              let pairs = [ for i in 0..8192 -> uint64 i * 10UL, 1_000_000L + int64 i * 60L ]
              let t = recordAll SequenceTracker.empty pairs
              Expect.equal (SequenceTracker.count t) 4097 "downsampled"
              Expect.equal t.Seqs[0] 0UL "first kept"
              Expect.equal t.Seqs[1] 20UL "every second"
              Expect.equal (SequenceTracker.decode (SequenceTracker.encode t)) (Ok t) "still encodes"
          }

          testProp "merge stays non-decreasing, within capacity, and encodable"
          <| Prop.forAll (Arb.fromGen (Gen.zip trackerGen trackerGen)) (fun (a, b) ->
              let a = SequenceTracker.normalize a
              let m = SequenceTracker.merge a b

              nonDecreasing m
              && SequenceTracker.count m <= SequenceTracker.capacity
              // a's pairs are kept as a prefix, unless a jump v1 cannot encode restarted the tracker
              && (m.Seqs.Length >= a.Seqs.Length && m.Seqs[.. a.Seqs.Length - 1] = a.Seqs
                  || Array.contains m.Seqs[0] b.Seqs)
              && SequenceTracker.decode (SequenceTracker.encode m) = Ok m)

          test "a jump the 32-bit slot cannot hold restarts the tracker from the new pair" {
              let t =
                  { Seqs = [| 1UL |]
                    Times = [| 1000L |] }

              let t, _ = SequenceTracker.record 5_000_000_000UL 2000L None t
              Expect.equal t.Seqs [| 5_000_000_000UL |] "restarted"
              Expect.equal (SequenceTracker.decode (SequenceTracker.encode t)) (Ok t) "round trip"

              let raw =
                  { Seqs = [| 1UL; 5_000_000_000UL; 5_000_000_100UL |]
                    Times = [| 1L; 2L; 3L |] }

              Expect.equal
                  (SequenceTracker.decode (SequenceTracker.encode raw))
                  (Ok
                      { Seqs = [| 5_000_000_000UL; 5_000_000_100UL |]
                        Times = [| 2L; 3L |] })
                  "encode normalizes"
          }

          test "lookups round to the neighbouring entry" {
              let t =
                  { Seqs = [| 4UL; 8UL; 12UL |]
                    Times = [| 100L; 200L; 300L |] }

              Expect.equal (SequenceTracker.timeOfSeq TrackerRounding.Down 8UL t) (Some 200L) "exact"
              Expect.equal (SequenceTracker.timeOfSeq TrackerRounding.Up 6UL t) (Some 200L) "up"
              Expect.equal (SequenceTracker.timeOfSeq TrackerRounding.Down 6UL t) (Some 100L) "down"
              Expect.equal (SequenceTracker.timeOfSeq TrackerRounding.Down 0UL t) None "before first"
              Expect.equal (SequenceTracker.seqOfTime TrackerRounding.Up 150L t) (Some 8UL) "seq up"
              Expect.equal (SequenceTracker.seqOfTime TrackerRounding.Up 350L t) None "after last"
          }

          test "every sequence tracker SlateDB wrote in the compat manifests decodes plausibly" {
              match compatRoot () with
              | None -> skiptest "compat vectors not found (set SLATE_SHARED_DIR)"
              | Some root ->
                  let cases = Directory.GetDirectories(Path.Combine(root, "slatedb-0.12.1"))
                  let mutable nonEmpty = 0

                  for case in cases do
                      let md = Path.Combine(case, "db", "manifest")

                      if Directory.Exists md then
                          for f in Directory.GetFiles md do
                              let m = ManifestCodec.decode (File.ReadAllBytes f) |> okOrFail
                              let t = SequenceTracker.decode m.SequenceTracker |> okOrFail
                              Expect.isTrue (nonDecreasing t) (sprintf "%s non-decreasing" f)
                              // times are Unix seconds of the 2026 generation run
                              for s in t.Times do
                                  Expect.isTrue (s > 1_700_000_000L && s < 1_900_000_000L) (sprintf "%s time %d" f s)

                              for s in t.Seqs do
                                  Expect.isLessThanOrEqual s (max 1UL m.LastL0Seq) (sprintf "%s seq %d" f s)

                              Expect.equal (SequenceTracker.encode t) m.SequenceTracker (sprintf "%s re-encodes" f)

                              if SequenceTracker.count t > 0 then
                                  nonEmpty <- nonEmpty + 1

                  Expect.isGreaterThan nonEmpty 10 "many non-empty trackers"
          } ]
