/// Retention (SPEC §5.5, §5.10; §9 invariants 25-27) on single passes, plus the read oracles
/// shared with the compaction model check.
module Slate.Properties.RetentionProps

open Expecto
open FsCheck
open FsCheck.FSharp
open Slate.Model
open Slate.Properties.TestUtil

// ---------------------------------------------------------------- oracles (shared)

/// The concat merge operator (associative).
let concat: MergeOperator =
    fun _ existing operand ->
        match existing with
        | Some e -> Array.append e operand
        | None -> operand

/// True when the row's expire_ts is at or before `clock`.
let expiredAt (clock: int64) (r: RowEntry) : bool =
    match r.ExpireTs with
    | Some e -> e <= clock
    | None -> false

/// The TTL step alone (what a reader must see after retention with `clock`): expired values
/// become tombstones, expired operands vanish.
let ttl (clock: int64) (rows: RowEntry list) : RowEntry list =
    rows
    |> List.choose (fun r ->
        if expiredAt clock r then
            match r.Value with
            | RowValue.Value _ ->
                Some
                    { r with
                        Value = RowValue.Tombstone
                        ExpireTs = None }
            | RowValue.Merge _ -> None
            | RowValue.Tombstone -> Some r
        else
            Some r)

/// The resolved visible rows at `maxSeq` of rows in any order (concat operator).
let visibleAt (maxSeq: uint64) (rows: RowEntry list) : RowEntry list =
    match Merge.visible (Some concat) maxSeq (List.sortWith Merge.compareRows rows) with
    | Ok v -> v
    | Error e -> failtestf "resolve failed: %A" e

/// The seqs worth checking at and above `minSeq`: it, every row seq above it, and ∞.
let checkSeqs (minSeq: uint64) (rows: RowEntry list) : uint64 list =
    minSeq
    :: System.UInt64.MaxValue
    :: (rows |> List.map (fun r -> r.Seq) |> List.filter (fun s -> s > minSeq))
    |> List.distinct

/// Invariants 25-27 for one retention pass from `input` to `output` with parameters `p`: the
/// reads at every seq ≥ the boundary equal the TTL-applied input; nothing above the boundary is
/// dropped except expired operands and (last run) oldest-end tombstones; outside the last run
/// no tombstone above the boundary and no key disappears. Returns an error message or None.
let retentionViolation (p: RetentionParams) (input: RowEntry list) (output: RowEntry list) : string option =
    let expected = ttl p.Clock input

    let sorted =
        output |> List.pairwise |> List.forall (fun (a, b) -> Merge.compareRows a b < 0)

    let badSeq =
        checkSeqs p.RetentionMinSeq input
        |> List.tryFind (fun s -> visibleAt s output <> visibleAt s expected)

    let present = output |> List.map (fun r -> Bytes.toHex r.Key, r.Seq) |> Set.ofList

    let oldestOut key =
        output
        |> List.filter (fun r -> Bytes.equal r.Key key)
        |> List.map (fun r -> r.Seq)
        |> function
            | [] -> None
            | xs -> Some(List.min xs)

    let lost =
        expected
        |> List.filter (fun r -> r.Seq > p.RetentionMinSeq && not (present.Contains(Bytes.toHex r.Key, r.Seq)))
        |> List.filter (fun r ->
            // allowed: last-run tombstones older than every kept version of the key
            not (
                p.IsLastRun
                && r.Value = RowValue.Tombstone
                && (match oldestOut r.Key with
                    | Some o -> r.Seq < o
                    | None -> true)
            ))

    let keysIn = expected |> List.map (fun r -> Bytes.toHex r.Key) |> Set.ofList
    let keysOut = output |> List.map (fun r -> Bytes.toHex r.Key) |> Set.ofList

    if not sorted then
        Some "output not strictly sorted by (key asc, seq desc)"
    else
        match badSeq with
        | Some s -> Some(sprintf "reads differ at seq %d" s)
        | None ->
            match lost with
            | r :: _ -> Some(sprintf "row (key %s, seq %d) above the boundary was dropped" (Bytes.toHex r.Key) r.Seq)
            | [] ->
                if not p.IsLastRun && keysIn <> keysOut then
                    Some "a key vanished outside the last run"
                else
                    None

// ---------------------------------------------------------------- generators

let private keys = [| [| 0x61uy |]; [| 0x61uy; 0uy |]; [| 0x62uy |] |]

/// Rows over 3 keys with unique seqs 1..n, every kind, create_ts = seq, some TTLs.
let historyGen (withMerges: bool) : Gen<RowEntry list> =
    gen {
        let! n = Gen.choose (0, 14)

        let! rows =
            [ 1..n ]
            |> List.map (fun s ->
                gen {
                    let! k = Gen.elements keys

                    let! kind =
                        if withMerges then
                            Gen.frequency [ 3, Gen.constant 0; 2, Gen.constant 1; 3, Gen.constant 2 ]
                        else
                            Gen.frequency [ 3, Gen.constant 0; 2, Gen.constant 1 ]

                    let! ttlD = Gen.frequency [ 3, Gen.constant None; 1, Gen.choose (1, 6) |> Gen.map Some ]
                    let v = [| byte s |]

                    let value =
                        match kind with
                        | 0 -> RowValue.Value v
                        | 1 -> RowValue.Tombstone
                        | _ -> RowValue.Merge v

                    return
                        { Key = k
                          Value = value
                          Seq = uint64 s
                          CreateTs = Some(int64 s)
                          ExpireTs =
                            match value, ttlD with
                            | RowValue.Tombstone, _ -> None
                            | _, Some d -> Some(int64 (s + d))
                            | _, None -> None }
                })
            |> Gen.sequenceToList

        return List.sortWith Merge.compareRows rows
    }

let private paramsGen: Gen<RetentionParams> =
    gen {
        let! minSeq = Gen.choose (0, 16)
        let! clock = Gen.choose (-1, 22)
        let! last = Gen.elements [ true; false ]

        return
            { RetentionMinSeq = uint64 minSeq
              Clock = int64 clock
              IsLastRun = last
              MergeOperator = Some concat }
    }

let private applyOk p rows =
    match Retention.apply p rows with
    | Ok r -> r
    | Error e -> failtestf "retention failed: %A" e

let private row (k: string) (seq: int) (v: RowValue) (expire: int64 option) : RowEntry =
    { Key = System.Text.Encoding.ASCII.GetBytes k
      Value = v
      Seq = uint64 seq
      CreateTs = Some(int64 seq)
      ExpireTs = expire }

let private value (s: string) =
    RowValue.Value(System.Text.Encoding.ASCII.GetBytes s)

let private merge (s: string) =
    RowValue.Merge(System.Text.Encoding.ASCII.GetBytes s)

let private p0 =
    { RetentionMinSeq = 100UL
      Clock = 0L
      IsLastRun = false
      MergeOperator = Some concat }

// ---------------------------------------------------------------- tests

let private examples =
    testList
        "examples"
        [ test "an expired value becomes a tombstone with the same seq and create_ts" {
              let out = applyOk { p0 with Clock = 10L } [ row "k" 3 (value "v") (Some 10L) ]
              Expect.equal out [ row "k" 3 RowValue.Tombstone None ] "tombstone"
          }

          test "an expired merge operand is dropped; an unexpired one is kept" {
              let out =
                  applyOk { p0 with Clock = 10L } [ row "k" 4 (merge "b") (Some 11L); row "k" 3 (merge "a") (Some 9L) ]

              Expect.equal out [ row "k" 4 (merge "b") (Some 11L) ] "expired operand gone"
          }

          test "versions below the first one at or under the boundary are dropped" {
              let rows =
                  [ row "k" 5 (value "c") None
                    row "k" 3 (value "b") None
                    row "k" 1 (value "a") None ]

              let out = applyOk { p0 with RetentionMinSeq = 3UL } rows
              Expect.equal out (List.take 2 rows) "seq 1 invisible at every seq >= 3"
              let out = applyOk { p0 with RetentionMinSeq = 5UL } rows
              Expect.equal out (List.take 1 rows) "only the newest"
          }

          test "last run: a tombstone-only key vanishes; oldest-end tombstones go" {
              let p =
                  { p0 with
                      RetentionMinSeq = 3UL
                      IsLastRun = true }

              Expect.isEmpty (applyOk p [ row "k" 5 RowValue.Tombstone None ]) "vanished"

              Expect.equal
                  (applyOk p [ row "k" 5 (value "v") None; row "k" 3 RowValue.Tombstone None ])
                  [ row "k" 5 (value "v") None ]
                  "oldest tombstone dropped"

              Expect.equal
                  (applyOk { p with IsLastRun = false } [ row "k" 5 RowValue.Tombstone None ])
                  [ row "k" 5 RowValue.Tombstone None ]
                  "kept outside the last run"
          }

          test "operands at or below the boundary fold onto their base" {
              let rows =
                  [ row "k" 5 (merge "c") None
                    row "k" 4 (merge "b") None
                    row "k" 2 (value "a") None ]

              let out = applyOk { p0 with RetentionMinSeq = 10UL } rows

              Expect.equal
                  out
                  [ { row "k" 5 (value "abc") None with
                        CreateTs = Some 5L } ]
                  "folded into one value"

              let out = applyOk { p0 with RetentionMinSeq = 4UL } rows

              Expect.equal
                  out
                  [ row "k" 5 (merge "c") None
                    { row "k" 4 (value "ab") None with
                        CreateTs = Some 4L } ]
                  "never across the boundary"
          }

          test "operands fold onto a tombstone base as no existing value" {
              let rows =
                  [ row "k" 5 (merge "b") None
                    row "k" 4 (merge "a") None
                    row "k" 2 RowValue.Tombstone None ]

              Expect.equal (applyOk p0 rows) [ row "k" 5 (value "ab") None ] "a value"
          }

          test "operands of different expire_ts are not folded together" {
              let rows =
                  [ row "k" 5 (merge "c") (Some 50L)
                    row "k" 4 (merge "b") (Some 50L)
                    row "k" 3 (merge "a") (Some 60L)
                    row "k" 2 (value "z") None ]

              Expect.equal
                  (applyOk p0 rows)
                  [ row "k" 5 (merge "bc") (Some 50L)
                    row "k" 3 (merge "a") (Some 60L)
                    row "k" 2 (value "z") None ]
                  "two operand groups, base kept apart"
          }

          test "without an operator a merge row fails the job" {
              let p = { p0 with MergeOperator = None }

              match Retention.apply p [ row "k" 5 (merge "a") None ] with
              | Error(RetentionError.MergeOperatorMissing k) -> Expect.equal k "k"B "key reported"
              | r -> failtestf "expected MergeOperatorMissing, got %A" r

              Expect.isOk (Retention.apply p [ row "k" 5 (value "a") None ]) "values are fine"
          }

          test "unsorted input is an error" {
              let bad = [ row "k" 3 (value "a") None; row "k" 5 (value "b") None ]

              match Retention.apply p0 bad with
              | Error(RetentionError.Unsorted _) -> ()
              | r -> failtestf "expected Unsorted, got %A" r

              Expect.isError (Retention.apply p0 [ row "b" 1 (value "a") None; row "a" 2 (value "b") None ]) "keys"
              Expect.isError (Retention.apply p0 [ row "a" 1 (value "a") None; row "a" 1 (value "b") None ]) "dup"
          } ]

let allTests =
    testList
        "Retention"
        [ examples

          testPropN 2000 "reads preserved at every seq >= boundary; invariants 25-27"
          <| Prop.forAll (Arb.fromGen (Gen.zip (historyGen true) paramsGen)) (fun (rows, p) ->
              match retentionViolation p rows (applyOk p rows) with
              | None -> true
              | Some msg -> failtestf "%s\nparams %A\nrows %A" msg p rows)

          testPropN 500 "idempotent: a second pass with the same parameters changes nothing"
          <| Prop.forAll (Arb.fromGen (Gen.zip (historyGen true) paramsGen)) (fun (rows, p) ->
              let once = applyOk p rows
              applyOk p once = once)

          testPropN 500 "flush retention never drops a tombstone (no last-run rule)"
          <| Prop.forAll (Arb.fromGen (Gen.zip (historyGen true) paramsGen)) (fun (rows, p) ->
              let out =
                  match Retention.flush p.RetentionMinSeq p.Clock (Some concat) rows with
                  | Ok r -> r
                  | Error e -> failtestf "%A" e

              out = applyOk { p with IsLastRun = false } rows
              && retentionViolation { p with IsLastRun = false } rows out = None)

          testPropN 500 "without merges, the operator does not matter"
          <| Prop.forAll (Arb.fromGen (Gen.zip (historyGen false) paramsGen)) (fun (rows, p) ->
              Retention.apply { p with MergeOperator = None } rows = Ok(applyOk p rows))

          testPropN 500 "streaming applySeq yields exactly apply's rows"
          <| Prop.forAll (Arb.fromGen (Gen.zip (historyGen true) paramsGen)) (fun (rows, p) ->
              let streamed =
                  Retention.applySeq p rows
                  |> Seq.map (function
                      | Ok r -> r
                      | Error e -> failtestf "%A" e)
                  |> List.ofSeq

              streamed = applyOk p rows) ]
