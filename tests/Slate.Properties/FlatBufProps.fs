module Slate.Properties.FlatBufProps

open System
open System.Buffers.Binary
open Expecto
open FsCheck
open FsCheck.FSharp
open Slate.Model
open Slate.Properties.TestUtil

// ---------------------------------------------------------------- generators

let private bytesGen: Gen<byte[]> =
    Gen.frequency
        [ 1, Gen.constant [||]
          4, Gen.choose (1, 40) |> Gen.bind (fun n -> Gen.arrayOfLength n Generators.byteGen) ]

/// Valid Unicode strings (no lone surrogates), with multi-byte characters.
let private stringGen: Gen<string> =
    Gen.listOf (Gen.elements [ "a"; "Z"; "0"; " "; "é"; "€"; "😀"; "\u0001"; "ß"; "/" ])
    |> Gen.map (String.concat "")

let private anyInt: Gen<int> = ArbMap.defaults.ArbFor<int>().Generator

let private u64Gen: Gen<uint64> =
    Gen.frequency
        [ 3, Gen.choose (0, 1000) |> Gen.map uint64
          2, Gen.elements [ 0UL; UInt64.MaxValue; 1UL <<< 63; 0x0102030405060708UL ]
          2, Gen.map2 (fun (a: int) (b: int) -> (uint64 (uint32 a) <<< 32) ||| uint64 (uint32 b)) anyInt anyInt ]

/// A random field value for `slot`, nesting tables while `depth > 0`.
let rec private fieldGen (depth: int) (slot: int) : Gen<FbField> =
    let scalars =
        [ 2, Gen.elements [ true; false ] |> Gen.map (fun v -> FbField.Bool(slot, v))
          2, Gen.choose (0, 255) |> Gen.map (fun v -> FbField.U8(slot, byte v))
          2, Gen.choose (0, 65535) |> Gen.map (fun v -> FbField.U16(slot, uint16 v))
          2, anyInt |> Gen.map (fun v -> FbField.U32(slot, uint32 v))
          2, anyInt |> Gen.map (fun v -> FbField.I32(slot, v))
          3, u64Gen |> Gen.map (fun v -> FbField.U64(slot, v))
          2, u64Gen |> Gen.map (fun v -> FbField.I64(slot, int64 v))
          3, bytesGen |> Gen.map (fun v -> FbField.Bytes(slot, v))
          2, stringGen |> Gen.map (fun v -> FbField.String(slot, v))
          1,
          Gen.arrayOf (Gen.choose (0, 65535) |> Gen.map uint16)
          |> Gen.map (fun v -> FbField.U16s(slot, v))
          1,
          Gen.arrayOf (anyInt |> Gen.map uint32)
          |> Gen.map (fun v -> FbField.U32s(slot, v))
          1, Gen.arrayOf u64Gen |> Gen.map (fun v -> FbField.U64s(slot, v)) ]

    if depth <= 0 then
        Gen.frequency scalars
    else
        Gen.frequency (
            scalars
            @ [ 2, tableGen (depth - 1) |> Gen.map (fun t -> FbField.Table(slot, t))
                1,
                Gen.choose (0, 4)
                |> Gen.bind (fun n -> Gen.listOfLength n (tableGen (depth - 1)))
                |> Gen.map (fun ts -> FbField.Tables(slot, ts)) ]
        )

/// A random table: distinct slots in 0..19.
and private tableGen (depth: int) : Gen<FbField list> =
    gen {
        let! slots = Gen.listOf (Gen.choose (0, 19))
        let slots = slots |> List.distinct
        return! slots |> List.map (fieldGen depth) |> Gen.sequenceToList
    }

// ---------------------------------------------------------------- checking

let private slotOf (f: FbField) =
    match f with
    | FbField.Bool(s, _)
    | FbField.U8(s, _)
    | FbField.U16(s, _)
    | FbField.U32(s, _)
    | FbField.I32(s, _)
    | FbField.U64(s, _)
    | FbField.I64(s, _)
    | FbField.Bytes(s, _)
    | FbField.String(s, _)
    | FbField.U16s(s, _)
    | FbField.U32s(s, _)
    | FbField.U64s(s, _)
    | FbField.Table(s, _)
    | FbField.Tables(s, _) -> s

/// Reads back every field with the accessor of its type and compares; absent slots must read
/// as absent / default.
let rec private matches (t: FbTable) (fields: FbField list) : bool =
    let ok (r: Result<'a, DecodeError>) (expected: 'a) = r = Ok expected

    let present =
        fields
        |> List.forall (fun f ->
            match f with
            | FbField.Bool(s, v) -> ok (FlatBuf.bool t s "f" (not v)) v
            | FbField.U8(s, v) -> ok (FlatBuf.u8Opt t s "f") (Some v)
            | FbField.U16(s, v) -> ok (FlatBuf.u16Opt t s "f") (Some v)
            | FbField.U32(s, v) -> ok (FlatBuf.u32Opt t s "f") (Some v)
            | FbField.I32(s, v) -> ok (FlatBuf.i32 t s "f" (v + 1)) v
            | FbField.U64(s, v) -> ok (FlatBuf.u64Opt t s "f") (Some v)
            | FbField.I64(s, v) -> ok (FlatBuf.i64 t s "f" (v + 1L)) v
            | FbField.Bytes(s, v) -> ok (FlatBuf.bytesReq t s "f") v
            | FbField.String(s, v) -> ok (FlatBuf.stringReq t s "f") v
            | FbField.U16s(s, v) -> ok (FlatBuf.u16s t s "f") (Some v)
            | FbField.U32s(s, v) -> ok (FlatBuf.u32s t s "f") (Some v)
            | FbField.U64s(s, v) -> ok (FlatBuf.u64s t s "f") (Some v)
            | FbField.Table(s, sub) ->
                match FlatBuf.tableReq t s "f" "sub" with
                | Ok c -> matches c sub
                | Error _ -> false
            | FbField.Tables(s, subs) ->
                match FlatBuf.tablesReq t s "f" "sub" with
                | Ok cs -> cs.Length = List.length subs && List.forall2 matches (List.ofArray cs) subs
                | Error _ -> false)

    let used = fields |> List.map slotOf |> Set.ofList

    let absent =
        [ 0..25 ]
        |> List.filter (fun s -> not (used.Contains s))
        |> List.forall (fun s ->
            not (FlatBuf.isPresent t s)
            && FlatBuf.u64 t s "f" 7UL = Ok 7UL
            && FlatBuf.bytes t s "f" = Ok None
            && FlatBuf.table t s "f" "x" |> Result.map Option.isNone = Ok true)

    present && absent

let private roundTrip (fields: FbField list) : bool =
    let buf = FlatBuf.build fields

    match FlatBuf.root "T" (ReadOnlyMemory buf) with
    | Ok t -> matches t fields
    | Error _ -> false

/// Builds a chain of `n` nested tables (slot 0 each).
let rec private chain (n: int) : FbField list =
    if n = 0 then
        [ FbField.U8(1, 9uy) ]
    else
        [ FbField.Table(0, chain (n - 1)) ]

/// Follows slot 0 down the chain; returns the error if any.
let private walkChain (buf: byte[]) : Result<int, DecodeError> =
    let rec go (t: FbTable) depth =
        match FlatBuf.table t 0 "next" "T" with
        | Ok(Some c) -> go c (depth + 1)
        | Ok None -> Ok depth
        | Error e -> Error e

    FlatBuf.root "T" (ReadOnlyMemory buf) |> Result.bind (fun t -> go t 1)

/// Hand-made buffer: root table whose slot 0 is a vector of `n` offsets all pointing to one table
/// whose slot 0 is a `[ubyte]` of `size` bytes (shared-offset amplification).
let private amplified (n: int) (size: int) : byte[] =
    let vt2 = 24 + 4 * n
    let t2 = vt2 + 8
    let b = t2 + 8
    let buf = Array.zeroCreate (b + 4 + size)

    let w16 (p: int) (v: int) =
        BinaryPrimitives.WriteUInt16LittleEndian(Span(buf, p, 2), uint16 v)

    let w32 (p: int) (v: int) =
        BinaryPrimitives.WriteInt32LittleEndian(Span(buf, p, 4), v)

    w32 0 12
    w16 4 6
    w16 6 8
    w16 8 4
    w32 12 8
    w32 16 4
    w32 20 n

    for i in 0 .. n - 1 do
        w32 (24 + 4 * i) (t2 - (24 + 4 * i))

    w16 vt2 6
    w16 (vt2 + 2) 8
    w16 (vt2 + 4) 4
    w32 t2 8
    w32 (t2 + 4) 4
    w32 b size
    buf

let private readAmplified (buf: byte[]) : Result<int64, DecodeError> =
    let items =
        FlatBuf.root "R" (ReadOnlyMemory buf)
        |> Result.bind (fun root -> FlatBuf.tablesReq root 0 "items" "Item")

    match items with
    | Error e -> Error e
    | Ok items ->
        items
        |> Array.fold
            (fun acc it ->
                acc
                |> Result.bind (fun total ->
                    FlatBuf.bytesReq it 0 "data" |> Result.map (fun d -> total + int64 d.Length)))
            (Ok 0L)

/// Finds the first occurrence of `needle` in `hay`.
let private indexOf (hay: byte[]) (needle: byte[]) : int =
    ReadOnlySpan<byte>(hay).IndexOf(ReadOnlySpan<byte>(needle))

let private isError (r: Result<'a, DecodeError>) =
    match r with
    | Error _ -> true
    | Ok _ -> false

let allTests =
    testList
        "FlatBuf"
        [ testProp "build/read round-trips random nested tables"
          <| Prop.forAll (Arb.fromGen (tableGen 3)) roundTrip

          testProp "scalars are naturally aligned and tables 4-aligned in built buffers"
          <| Prop.forAll (Arb.fromGen (tableGen 2)) (fun fields ->
              // the reader rejects unaligned data, so a successful read of every u64 proves alignment;
              // here also check the root offset and buffer prefix explicitly
              let buf = FlatBuf.build fields
              let root = BinaryPrimitives.ReadUInt32LittleEndian(ReadOnlySpan(buf, 0, 4))
              root % 4u = 0u && roundTrip fields)

          testProp "a buffer read from a misaligned base (manifest style, after 2 bytes) still verifies"
          <| Prop.forAll (Arb.fromGen (tableGen 2)) (fun fields ->
              let buf = FlatBuf.build fields
              let shifted = Array.append [| 0xAAuy; 0xBBuy |] buf

              match FlatBuf.root "T" (ReadOnlyMemory(shifted, 2, buf.Length)) with
              | Ok t -> matches t fields
              | Error _ -> false)

          testProp "random bytes never make the reader throw"
          <| fun (bytes: byte[]) (slots: byte list) ->
              let bytes = if isNull bytes then [||] else bytes

              match FlatBuf.root "T" (ReadOnlyMemory bytes) with
              | Error _ -> true
              | Ok t ->
                  for s in slots do
                      let s = int s % 12
                      FlatBuf.u64 t s "f" 0UL |> ignore
                      FlatBuf.bytes t s "f" |> ignore
                      FlatBuf.string t s "f" |> ignore
                      FlatBuf.tables t s "f" "c" |> ignore
                      FlatBuf.u32s t s "f" |> ignore
                      FlatBuf.union t s (s + 1) "u" (fun _ -> "c") |> ignore

                  true

          testProp "every truncation of a built buffer with content at its end is rejected or still correct"
          <| Prop.forAll (Arb.fromGen (tableGen 2)) (fun fields ->
              let fields = fields @ [ FbField.Bytes(30, [| 1uy; 2uy; 3uy |]) ]
              let buf = FlatBuf.build fields

              [ 0 .. buf.Length - 1 ]
              |> List.forall (fun n ->
                  match FlatBuf.root "T" (ReadOnlyMemory(buf, 0, n)) with
                  | Error _ -> true
                  | Ok t -> FlatBuf.bytesReq t 30 "tail" |> isError))

          test "nesting deeper than 64 tables is rejected; 63 levels are fine" {
              Expect.equal (walkChain (FlatBuf.build (chain 63))) (Ok 64) "64 tables deep is allowed"

              match walkChain (FlatBuf.build (chain 70)) with
              | Error(DecodeError.Invalid(_, d)) -> Expect.stringContains d "nesting" "depth error"
              | other -> failtestf "expected depth error, got %A" other
          }

          test "shared-offset amplification is stopped by the visit budget" {
              // small buffers decode fine
              Expect.equal (readAmplified (amplified 4 100)) (Ok 400L) "small"
              // 4000 references to one 100 KB vector would copy 400 MB
              let r = readAmplified (amplified 4000 100_000)
              Expect.isTrue (isError r) "amplified read must fail"
          }

          test "strings must be valid UTF-8 and 0-terminated" {
              let buf = FlatBuf.build [ FbField.String(0, "abc") ]
              let at = indexOf buf "abc"B

              let read (b: byte[]) =
                  FlatBuf.root "T" (ReadOnlyMemory b)
                  |> Result.bind (fun t -> FlatBuf.string t 0 "s")

              Expect.equal (read buf) (Ok(Some "abc")) "valid"
              let noTerm = Array.copy buf
              noTerm[at + 3] <- byte 'x'
              Expect.isTrue (isError (read noTerm)) "missing terminator"
              let badUtf8 = Array.copy buf
              badUtf8[at + 1] <- 0xFFuy
              Expect.isTrue (isError (read badUtf8)) "invalid UTF-8"
              let surrogate = Array.copy buf
              surrogate[at] <- 0xEDuy
              surrogate[at + 1] <- 0xA0uy
              surrogate[at + 2] <- 0x80uy
              Expect.isTrue (isError (read surrogate)) "encoded surrogate"
          }

          test "a misaligned u64 field or an offset outside the table is rejected" {
              let buf = FlatBuf.build [ FbField.U64(0, 5UL) ]
              let t = FlatBuf.root "T" (ReadOnlyMemory buf) |> okOrFail
              let entry = t.VTable + 4
              let off = int (BinaryPrimitives.ReadUInt16LittleEndian(ReadOnlySpan(buf, entry, 2)))
              let shifted = Array.copy buf
              BinaryPrimitives.WriteUInt16LittleEndian(Span(shifted, entry, 2), uint16 (off - 4))

              let readAt (b: byte[]) =
                  FlatBuf.root "T" (ReadOnlyMemory b)
                  |> Result.bind (fun t -> FlatBuf.u64 t 0 "v" 0UL)

              Expect.equal (readAt buf) (Ok 5UL) "valid"
              Expect.isTrue (isError (readAt shifted)) "unaligned (offset 4 of an 8-aligned table)"
              let outside = Array.copy buf
              BinaryPrimitives.WriteUInt16LittleEndian(Span(outside, entry, 2), uint16 (off + 8))
              Expect.isTrue (isError (readAt outside)) "beyond the inline size"
          }

          test "a vtable pointing outside the buffer, or of odd length, is rejected" {
              let buf = FlatBuf.build [ FbField.U32(0, 5u) ]
              let t = FlatBuf.root "T" (ReadOnlyMemory buf) |> okOrFail
              let far = Array.copy buf
              BinaryPrimitives.WriteInt32LittleEndian(Span(far, t.Pos, 4), -1000)
              Expect.isTrue (isError (FlatBuf.root "T" (ReadOnlyMemory far))) "vtable out of range"
              let odd = Array.copy buf
              BinaryPrimitives.WriteUInt16LittleEndian(Span(odd, t.VTable, 2), 7us)
              Expect.isTrue (isError (FlatBuf.root "T" (ReadOnlyMemory odd))) "odd vtable length"
          }

          test "union tag without value (and value without tag) is rejected; NONE is no value" {
              let u (fields: FbField list) =
                  FlatBuf.root "T" (ReadOnlyMemory(FlatBuf.build fields))
                  |> Result.bind (fun t -> FlatBuf.union t 0 1 "m" (fun _ -> "M"))

              Expect.isTrue (isError (u [ FbField.U8(0, 1uy) ])) "tag only"
              Expect.isTrue (isError (u [ FbField.Table(1, []) ])) "value only"

              match u [ FbField.U8(0, 1uy); FbField.Table(1, [ FbField.U64(0, 3UL) ]) ] with
              | Ok(FbUnion.Value(1uy, t)) -> Expect.equal (FlatBuf.u64 t 0 "epoch" 0UL) (Ok 3UL) "value"
              | other -> failtestf "expected a union value, got %A" other

              match u [] with
              | Ok FbUnion.NoValue -> ()
              | other -> failtestf "expected no value, got %A" other
          }

          test "missing required fields are named in the error" {
              let t = FlatBuf.root "Tbl" (ReadOnlyMemory(FlatBuf.build [])) |> okOrFail

              match FlatBuf.bytesReq t 1 "first_key" with
              | Error(DecodeError.Invalid(what, _)) -> Expect.equal what "Tbl.first_key" "names table and field"
              | other -> failtestf "expected Invalid, got %A" other
          }

          test "an empty table is 12 bytes and verifies" {
              let buf = FlatBuf.build []
              Expect.equal buf.Length 12 "root offset + vtable + soffset"
              Expect.isOk (FlatBuf.root "T" (ReadOnlyMemory buf)) "verifies"
          } ]
