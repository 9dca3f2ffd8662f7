/// Properties of `WriteRows.build`: the rows a write batch becomes (SPEC §5.4 step 3).
module Slate.Properties.WriteRowsProps

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open Slate.Engine
open Slate.Model
open Slate.Properties.TestUtil

let private concat: MergeOperator =
    fun _ existing operand -> Array.append (defaultArg existing [||]) operand

let private genOp: Gen<WriteOp> =
    let key =
        Gen.elements [ "a"; "b"; "c"; "d" ] |> Gen.map Text.Encoding.ASCII.GetBytes

    let value = Gen.arrayOfLength 2 (Gen.elements [ 0uy; 1uy; 2uy ])

    Gen.frequency
        [ 4, Gen.map2 (fun k v -> WriteOp.Put(k, v, Ttl.NoExpiry)) key value
          2, Gen.map WriteOp.Delete key
          3, Gen.map2 (fun k v -> WriteOp.Merge(k, v, Ttl.NoExpiry)) key value ]

/// The oracle: each key's operations folded in batch order.
let private oracle (ops: WriteOp list) : (byte[] * RowValue) list =
    let step (state: Map<string, RowValue>) (op: WriteOp) =
        match op with
        | WriteOp.Put(k, v, _) -> Map.add (Bytes.toHex k) (RowValue.Value v) state
        | WriteOp.Delete k -> Map.add (Bytes.toHex k) RowValue.Tombstone state
        | WriteOp.Merge(k, o, _) ->
            let next =
                match Map.tryFind (Bytes.toHex k) state with
                | None -> RowValue.Merge o
                | Some(RowValue.Value v) -> RowValue.Value(concat k (Some v) o)
                | Some RowValue.Tombstone -> RowValue.Value(concat k None o)
                | Some(RowValue.Merge acc) -> RowValue.Merge(concat k (Some acc) o)

            Map.add (Bytes.toHex k) next state

    ops
    |> List.fold step Map.empty
    |> Map.toList
    |> List.map (fun (k, v) -> Bytes.ofHex k, v)

let allTests =
    testList
        "WriteRows"
        [ testProp "a batch becomes one row per key in key order, each the fold of its operations"
          <| Prop.forAll (Arb.fromGen (Gen.nonEmptyListOf genOp)) (fun ops ->
              let rows = WriteRows.build (Some concat) None ops 7UL 1000L
              let expected = oracle ops
              Expect.equal (rows |> List.map (fun r -> r.Key, r.Value)) expected "rows"

              for r in rows do
                  Expect.equal (r.Seq, r.CreateTs, r.ExpireTs) (7UL, Some 1000L, None) "stamps")

          testProp
              "expire times: Default takes the default TTL, ExpireAfter counts from create_ts, overflow never expires"
          <| Prop.forAll (Arb.fromGen (Gen.choose (0, 1_000_000))) (fun ms ->
              let d = TimeSpan.FromMilliseconds(float ms)
              Expect.equal (WriteRows.expireTs (Some d) 5000L Ttl.Default) (Some(5000L + int64 ms)) "default"
              Expect.equal (WriteRows.expireTs None 5000L Ttl.Default) None "no default"
              Expect.equal (WriteRows.expireTs None 5000L (Ttl.ExpireAfter d)) (Some(5000L + int64 ms)) "after"
              Expect.equal (WriteRows.expireTs None 5000L Ttl.NoExpiry) None "never"

              Expect.equal
                  (WriteRows.expireTs None Int64.MaxValue (Ttl.ExpireAfter(d + TimeSpan.FromMilliseconds 1.0)))
                  None
                  "overflow")

          test "a merge without an operator, or one key merged with two expire times, is Invalid" {
              let k = [| 1uy |]

              let invalid (f: unit -> RowEntry list) (what: string) =
                  try
                      f () |> ignore
                      failtestf "%s: no exception" what
                  with :? Slate.SlateException as e ->
                      Expect.equal e.Kind Slate.SlateErrorKind.Invalid what

              invalid
                  (fun () -> WriteRows.build None None [ WriteOp.Merge(k, [| 2uy |], Ttl.NoExpiry) ] 1UL 0L)
                  "no operator"

              invalid
                  (fun () ->
                      WriteRows.build
                          (Some concat)
                          None
                          [ WriteOp.Put(k, [| 1uy |], Ttl.NoExpiry)
                            WriteOp.Merge(k, [| 2uy |], Ttl.ExpireAfter(TimeSpan.FromSeconds 1.0)) ]
                          1UL
                          0L)
                  "two expire times"
          } ]
