module Slate.Properties.RowProps

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open Slate.Model
open Slate.Properties.Generators
open Slate.Properties.TestUtil

/// A minimal v0 encoder (SST format 1 rows), written from SPEC §4.2 for the read-path tests.
let encodeV0 (firstKey: byte[]) (row: RowEntry) : byte[] =
    let prefix =
        if firstKey.Length = 0 then
            0
        else
            Bytes.commonPrefix (ReadOnlySpan firstKey) (ReadOnlySpan row.Key)

    let suffix = row.Key.Length - prefix
    let out = Collections.Generic.List<byte>()

    let u16 (v: int) =
        out.AddRange(BigEndian.bytesOfU64 (uint64 v) |> Array.skip 6)

    let u64 (v: uint64) = out.AddRange(BigEndian.bytesOfU64 v)
    u16 prefix
    u16 suffix
    out.AddRange(Array.sub row.Key prefix suffix)
    u64 row.Seq
    out.Add(Row.flagsOf row)
    row.ExpireTs |> Option.iter (uint64 >> u64)
    row.CreateTs |> Option.iter (uint64 >> u64)

    match row.Value with
    | RowValue.Tombstone -> ()
    | RowValue.Value v
    | RowValue.Merge v ->
        out.AddRange(BigEndian.bytesOfU64 (uint64 v.Length) |> Array.skip 4)
        out.AddRange v

    out.ToArray()

let private decodeV2 (src: byte[]) (off: int) (prev: byte[]) =
    Row.tryDecodeV2 (ReadOnlySpan src) off (ReadOnlySpan prev)

let private decodeV0 (src: byte[]) (off: int) (first: byte[]) =
    Row.tryDecodeV0 (ReadOnlySpan src) off (ReadOnlySpan first)

/// A row and a previous key that often shares a prefix with it.
let rowAndPrevGen: Gen<RowEntry * byte[]> =
    gen {
        let! row = rowGen
        let! mode = Gen.choose (0, 3)

        let! prev =
            match mode with
            | 0 -> Gen.constant [||]
            | 1 -> keyGen
            | 2 ->
                gen {
                    let! n = Gen.choose (0, row.Key.Length)
                    let! tail = Gen.arrayOf byteGen
                    return Array.append (Array.sub row.Key 0 n) tail
                }
            | _ -> Gen.constant row.Key

        return row, prev
    }

/// Tombstones that carry expire_ts (SlateDB may write them; v2 keeps them, v0 drops them).
let tombstoneWithExpireGen: Gen<RowEntry> =
    gen {
        let! row = rowGen
        let! e = tsGen

        return
            { row with
                Value = RowValue.Tombstone
                ExpireTs = Some e }
    }

let golden =
    let row1 =
        { Key = "key1"B
          Value = RowValue.Value "v1"B
          Seq = 5UL
          CreateTs = Some 1_700_000_000_000L
          ExpireTs = None }

    let row2 =
        { Key = "key2"B
          Value = RowValue.Tombstone
          Seq = 6UL
          CreateTs = Some 1_700_000_000_000L
          ExpireTs = None }

    let hex (s: string) = Bytes.ofHex (s.Replace(" ", ""))
    // Verbatim from SPEC §4.2.
    let bytes1 =
        hex "00 04 02 6b 65 79 31 76 31 00 00 00 00 00 00 00 05 04 00 00 01 8b cf e5 68 00"

    let bytes2 = hex "03 01 00 32 00 00 00 00 00 00 00 06 05 00 00 01 8b cf e5 68 00"

    testList
        "SPEC §4.2 example"
        [ testCase "the restart row key1 = v1 encodes exactly"
          <| fun () ->
              Expect.equal (Row.encodeV2 ReadOnlySpan.Empty row1) bytes1 "row 1"
              Expect.equal (Row.encodedSizeV2 ReadOnlySpan.Empty row1) bytes1.Length "size 1"

          testCase "the tombstone for key2 after key1 encodes exactly (shared 3)"
          <| fun () ->
              Expect.equal (Row.encodeV2 (ReadOnlySpan "key1"B) row2) bytes2 "row 2"
              Expect.equal (Row.encodedSizeV2 (ReadOnlySpan "key1"B) row2) bytes2.Length "size 2"

          testCase "both rows decode back"
          <| fun () ->
              let src = Array.append bytes1 bytes2
              let struct (r1, next) = decodeV2 src 0 [||] |> okOrFail
              let struct (r2, fin) = decodeV2 src next r1.Key |> okOrFail
              Expect.equal r1 row1 "row 1"
              Expect.equal r2 row2 "row 2"
              Expect.equal next bytes1.Length "offset after row 1"
              Expect.equal fin src.Length "offset after row 2" ]

let v2 =
    testList
        "codec v2"
        [ testProp "decode (encode row after prev) = row, for every row and previous key"
          <| Prop.forAll (Arb.fromGen rowAndPrevGen) (fun (row, prev) ->
              let bytes = Row.encodeV2 (ReadOnlySpan prev) row
              let struct (back, next) = decodeV2 bytes 0 prev |> okOrFail
              back = row && next = bytes.Length)

          testProp "shared is the longest common prefix and sizes agree"
          <| Prop.forAll (Arb.fromGen rowAndPrevGen) (fun (row, prev) ->
              let bytes = Row.encodeV2 (ReadOnlySpan prev) row
              let lcp = Bytes.commonPrefix (ReadOnlySpan prev) (ReadOnlySpan row.Key)

              match Varint.tryRead (ReadOnlySpan bytes) 0 with
              | ValueSome(struct (shared, _)) ->
                  int shared = lcp && bytes.Length = Row.encodedSizeV2 (ReadOnlySpan prev) row
              | ValueNone -> false)

          testProp "decodes at an offset inside a larger buffer and reports the next offset"
          <| Prop.forAll
              (Arb.fromGen (Gen.zip3 rowAndPrevGen (Gen.arrayOf byteGen) (Gen.arrayOf byteGen)))
              (fun ((row, prev), before, after) ->
                  let bytes = Row.encodeV2 (ReadOnlySpan prev) row
                  let src = Array.concat [ before; bytes; after ]
                  let struct (back, next) = decodeV2 src before.Length prev |> okOrFail
                  back = row && next = before.Length + bytes.Length)

          testProp "tombstones with expire_ts round-trip in v2"
          <| Prop.forAll (Arb.fromGen tombstoneWithExpireGen) (fun row ->
              let bytes = Row.encodeV2 ReadOnlySpan.Empty row
              let struct (back, _) = decodeV2 bytes 0 [||] |> okOrFail
              back = row)

          testProp "every proper prefix of an encoding is Truncated"
          <| Prop.forAll (Arb.fromGen rowAndPrevGen) (fun (row, prev) ->
              let bytes = Row.encodeV2 (ReadOnlySpan prev) row

              [ 0 .. bytes.Length - 1 ]
              |> List.forall (fun n ->
                  match decodeV2 (Array.sub bytes 0 n) 0 prev with
                  | Error(DecodeError.Truncated _) -> true
                  | _ -> false))

          testProp "unknown flag bits and tombstone+merge are rejected"
          <| Prop.forAll (Arb.fromGen (Gen.zip rowGen (Gen.choose (0, 255)))) (fun (row, f) ->
              let bytes = Row.encodeV2 ReadOnlySpan.Empty row

              let flagsAt =
                  bytes.Length
                  - 1
                  - (if row.ExpireTs.IsSome then 8 else 0)
                  - (if row.CreateTs.IsSome then 8 else 0)
              // Keep the timestamp bits so the length stays consistent.
              let flags = (byte f &&& ~~~0x06uy) ||| (bytes[flagsAt] &&& 0x06uy)
              let bad = flags &&& 0xF0uy <> 0uy || flags &&& 0x09uy = 0x09uy

              let valueBytes =
                  match row.Value with
                  | RowValue.Value v
                  | RowValue.Merge v -> v.Length
                  | _ -> 0

              bytes[flagsAt] <- flags

              match decodeV2 bytes 0 [||] with
              | Error(DecodeError.Invalid _) -> bad || (flags &&& 0x01uy <> 0uy && valueBytes > 0)
              | Ok _ -> not bad
              | Error _ -> false)

          testCase "shared longer than the previous key is an error naming the offset"
          <| fun () ->
              let bytes =
                  Row.encodeV2
                      (ReadOnlySpan "abcd"B)
                      { Key = "abcx"B
                        Value = RowValue.Value [||]
                        Seq = 1UL
                        CreateTs = None
                        ExpireTs = None }

              let src = Array.append [| 0uy; 0uy |] bytes

              match decodeV2 src 2 "ab"B with
              | Error(DecodeError.Invalid(what, _)) -> Expect.stringContains what "byte 2" "offset"
              | r -> failtestf "expected Invalid, got %A" r

          testPropN 500 "decoding arbitrary bytes never throws"
          <| Prop.forAll (Arb.fromGen (Gen.zip (Gen.arrayOf byteGen) keyGen)) (fun (junk, prev) ->
              match decodeV2 junk 0 prev with
              | Ok(struct (_, next)) -> next <= junk.Length
              | Error _ -> true) ]

let v0 =
    testList
        "codec v0 (read only)"
        [ testProp "decode (encodeV0 row) = row (tombstone expire_ts dropped) for every first key"
          <| Prop.forAll
              (Arb.fromGen (Gen.zip (Gen.oneof [ rowGen; tombstoneWithExpireGen ]) rowAndPrevGen))
              (fun (row, (_, first)) ->
                  let bytes = encodeV0 first row

                  let expected =
                      if row.Value = RowValue.Tombstone then
                          { row with ExpireTs = None }
                      else
                          row

                  let struct (back, next) = decodeV0 bytes 0 first |> okOrFail
                  back = expected && next = bytes.Length)

          testProp "every proper prefix of a v0 row is Truncated"
          <| Prop.forAll (Arb.fromGen rowAndPrevGen) (fun (row, first) ->
              let bytes = encodeV0 first row

              [ 0 .. bytes.Length - 1 ]
              |> List.forall (fun n ->
                  match decodeV0 (Array.sub bytes 0 n) 0 first with
                  | Error(DecodeError.Truncated _) -> true
                  | _ -> false))

          testCase "a prefix longer than the block's first key is rejected"
          <| fun () ->
              let row =
                  { Key = "abcd"B
                    Value = RowValue.Merge "m"B
                    Seq = 9UL
                    CreateTs = None
                    ExpireTs = None }

              let bytes = encodeV0 "abcz"B row

              match decodeV0 bytes 0 "ab"B with
              | Error(DecodeError.Invalid _) -> ()
              | r -> failtestf "expected Invalid, got %A" r

          testPropN 500 "decoding arbitrary bytes never throws"
          <| Prop.forAll (Arb.fromGen (Gen.zip (Gen.arrayOf byteGen) keyGen)) (fun (junk, first) ->
              match decodeV0 junk 0 first with
              | Ok(struct (_, next)) -> next <= junk.Length
              | Error _ -> true) ]

let allTests = testList "Row" [ golden; v2; v0 ]
