module Slate.Properties.BlockProps

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open Slate.Model
open Slate.Properties.Generators
open Slate.Properties.TestUtil

/// Model of a v2 block: rows (restart rows every 16 with shared 0, others share with the previous
/// key) ‖ restart offsets ‖ n, built from the row codec alone.
let modelBlock (rows: RowEntry list) : byte[] =
    let out = Collections.Generic.List<byte>()
    let restarts = Collections.Generic.List<int>()
    let mutable prev = [||]

    rows
    |> List.iteri (fun i r ->
        let p = if i % 16 = 0 then [||] else prev

        if i % 16 = 0 then
            restarts.Add out.Count

        out.AddRange(Row.encodeV2 (ReadOnlySpan p) r)
        prev <- r.Key)

    for o in restarts do
        out.Add(byte (o >>> 8))
        out.Add(byte o)

    out.Add(byte (restarts.Count >>> 8))
    out.Add(byte restarts.Count)
    out.ToArray()

/// Model of the fill rule: does `row` fit after `rows` in a block of `blockSize`?
let modelFits (blockSize: int) (rows: RowEntry list) (row: RowEntry) : bool =
    match rows with
    | [] -> true
    | _ ->
        let n = List.length rows
        let restart = n % 16 = 0
        let rowsLen = (modelBlock rows).Length - 2 * ((n + 15) / 16) - 2
        let current = rowsLen + 2 * ((n + 15) / 16) + 2
        let prev = if restart then [||] else (List.last rows).Key
        let size = Row.encodedSizeV2 (ReadOnlySpan prev) row
        let extra = if restart then 2 else 0
        current + size + extra <= blockSize && not (restart && rowsLen > 65535)

/// Packs rows greedily with the builder: one (bytes, rows) pair per block.
let pack (blockSize: int) (rows: RowEntry list) : (byte[] * RowEntry list) list =
    let b = BlockBuilder(blockSize)
    let blocks = ResizeArray()
    let current = ResizeArray()

    for r in rows do
        if not (b.TryAdd r) then
            blocks.Add(b.Finish(), List.ofSeq current)
            b.Reset()
            current.Clear()

            if not (b.TryAdd r) then
                failtest "an empty block refused a row"

        current.Add r

    if not b.IsEmpty then
        blocks.Add(b.Finish(), List.ofSeq current)

    List.ofSeq blocks

/// Encodes a v1 block (format 1): v0 rows with the prefix from the first key, offsets of every row.
let encodeV1 (rows: RowEntry list) : byte[] =
    let first = (List.head rows).Key
    let out = Collections.Generic.List<byte>()
    let offsets = Collections.Generic.List<int>()

    rows
    |> List.iteri (fun i r ->
        offsets.Add out.Count
        out.AddRange(RowProps.encodeV0 (if i = 0 then [||] else first) r))

    for o in offsets do
        out.Add(byte (o >>> 8))
        out.Add(byte o)

    out.Add(byte (offsets.Count >>> 8))
    out.Add(byte offsets.Count)
    out.ToArray()

let blockSizeGen: Gen<int> =
    Gen.frequency
        [ 3, Gen.elements [ 64; 128; 256; 1024; 4096; 65536 ]
          2, Gen.choose (1024, 65536)
          1, Gen.choose (1, 200) ]

/// Rows in WAL order: keys unsorted, prefixes still shared with the previous row.
let walRowsGen: Gen<RowEntry list> =
    Gen.listOf rowGen
    |> Gen.map (List.mapi (fun i r -> { r with Seq = uint64 (i + 1) }))

let private decode (fv: uint16) (b: byte[]) = Block.decode fv (ReadOnlySpan b)

let private cursorRows (c: BlockCursor) : RowEntry list =
    let acc = ResizeArray()
    let mutable go = true

    while go do
        match c.MoveNext() with
        | Ok true -> acc.Add c.Current
        | Ok false -> go <- false
        | Error e -> failtestf "cursor error: %s" (DecodeError.describe e)

    List.ofSeq acc

let private openCursor (fv: uint16) (b: byte[]) =
    Block.openCursor fv (ReadOnlyMemory b) |> okOrFail

/// Rows from the first one whose key is >= target (a linear model of seek).
let private fromKey (rows: RowEntry list) (target: byte[]) =
    rows |> List.skipWhile (fun r -> Bytes.compare r.Key target < 0)

let golden =
    testCase "SPEC §4.3 example: the two §4.2 rows as one block (51 bytes, CRC b94f9dac)"
    <| fun () ->
        let b = BlockBuilder(4096)

        let r1 =
            { Key = "key1"B
              Value = RowValue.Value "v1"B
              Seq = 5UL
              CreateTs = Some 1_700_000_000_000L
              ExpireTs = None }

        let r2 =
            { r1 with
                Key = "key2"B
                Value = RowValue.Tombstone
                Seq = 6UL }

        Expect.isTrue (b.TryAdd r1) "row 1"
        Expect.isTrue (b.TryAdd r2) "row 2"
        let bytes = b.Finish()

        let expected =
            Bytes.ofHex (
                ("00 04 02 6b 65 79 31 76 31 00 00 00 00 00 00 00 05 04 00 00 01 8b cf e5 68 00 "
                 + "03 01 00 32 00 00 00 00 00 00 00 06 05 00 00 01 8b cf e5 68 00 00 00 00 01")
                    .Replace(" ", "")
            )

        Expect.equal bytes expected "bytes"
        Expect.equal bytes.Length 51 "length"
        Expect.equal (Crc32.ofArray bytes) 0xb94f9dacu "crc"
        Expect.equal b.EstimatedSize 51 "estimated size"
        Expect.equal (decode 2us bytes |> okOrFail) [| r1; r2 |] "decodes"

let builder =
    testList
        "builder"
        [ testProp "blocks equal the model layout (restarts every 16 rows, prefix with the previous key)"
          <| Prop.forAll
              (Arb.fromGen (Gen.zip blockSizeGen (Gen.oneof [ sortedRowsGen; walRowsGen ])))
              (fun (bs, rows) -> pack bs rows |> List.forall (fun (bytes, rs) -> bytes = modelBlock rs))

          testProp
              "the fill rule: a block never exceeds block_size unless it is a single row, and each next row did not fit"
          <| Prop.forAll (Arb.fromGen (Gen.zip blockSizeGen sortedRowsGen)) (fun (bs, rows) ->
              let blocks = pack bs rows

              let sizesOk =
                  blocks
                  |> List.forall (fun (bytes, rs) -> bytes.Length <= bs || List.length rs = 1)

              let maximal =
                  blocks
                  |> List.pairwise
                  |> List.forall (fun ((_, a), (_, b)) -> not (modelFits bs a (List.head b)))

              let everyAddFit =
                  blocks
                  |> List.forall (fun (_, rs) ->
                      rs |> List.mapi (fun i r -> modelFits bs (List.take i rs) r) |> List.forall id)

              sizesOk && maximal && everyAddFit)

          testProp "EstimatedSize, Count, FirstKey and LastKey track the rows added"
          <| Prop.forAll (Arb.fromGen (Gen.zip blockSizeGen walRowsGen)) (fun (bs, rows) ->
              let b = BlockBuilder(bs)

              rows
              |> List.forall (fun r ->
                  if not (b.TryAdd r) then
                      b.Reset()
                      b.TryAdd r |> ignore

                  b.EstimatedSize = b.Finish().Length && b.LastKey = r.Key && b.Count >= 1))

          testCase "a restart offset may not exceed 65535 even in a larger block"
          <| fun () ->
              let b = BlockBuilder(1_000_000)

              let row i =
                  { Key = BigEndian.bytesOfU64 (uint64 i)
                    Value = RowValue.Value(Array.zeroCreate 5000)
                    Seq = 1UL
                    CreateTs = None
                    ExpireTs = None }

              for i in 0..15 do
                  Expect.isTrue (b.TryAdd(row i)) (sprintf "row %d" i)

              Expect.isFalse (b.TryAdd(row 16)) "row 16 would be a restart beyond 65535"
              Expect.equal b.Count 16 "count"

          testCase "an empty block accepts an oversized row; Reset empties it"
          <| fun () ->
              let b = BlockBuilder(16)

              let big =
                  { Key = "k"B
                    Value = RowValue.Value(Array.zeroCreate 100)
                    Seq = 1UL
                    CreateTs = None
                    ExpireTs = None }

              Expect.isTrue (b.TryAdd big) "accepted"
              Expect.isFalse (b.TryAdd { big with Value = RowValue.Tombstone }) "second refused"
              b.Reset()
              Expect.isTrue b.IsEmpty "empty"
              Expect.equal b.EstimatedSize 2 "empty size"
              Expect.throws (fun () -> b.Finish() |> ignore) "finish of an empty block" ]

let decoding =
    testList
        "decode"
        [ testProp "decode (finish rows) = rows for sorted and WAL-ordered rows at every block size"
          <| Prop.forAll
              (Arb.fromGen (Gen.zip blockSizeGen (Gen.oneof [ sortedRowsGen; walRowsGen ])))
              (fun (bs, rows) ->
                  let blocks = pack bs rows

                  blocks
                  |> List.forall (fun (bytes, rs) -> decode 2us bytes = Ok(Array.ofList rs))
                  && (blocks |> List.collect snd) = rows)

          testProp "v1 blocks (v0 rows, every row listed) decode"
          <| Prop.forAll (Arb.fromGen (sortedRowsGen |> Gen.filter (fun r -> not r.IsEmpty))) (fun rows ->
              decode 1us (encodeV1 rows) = Ok(
                  Array.ofList (
                      rows
                      |> List.map (fun r ->
                          if r.Value = RowValue.Tombstone then
                              { r with ExpireTs = None }
                          else
                              r)
                  )
              ))

          testPropN 300 "decoding a block with one byte changed or truncated never throws"
          <| Prop.forAll
              (Arb.fromGen (
                  gen {
                      let! rows = sortedRowsGen |> Gen.filter (fun r -> not r.IsEmpty)
                      let! fv = Gen.elements [ 1us; 2us ]

                      let bytes =
                          if fv = 2us then
                              fst (List.head (pack 4096 rows))
                          else
                              encodeV1 rows

                      let! i = Gen.choose (0, bytes.Length - 1)
                      let! x = Gen.choose (1, 255)
                      let! cut = Gen.choose (0, bytes.Length)
                      return fv, bytes, i, byte x, cut
                  }
              ))
              (fun (fv, bytes, i, x, cut) ->
                  let flipped = Array.copy bytes
                  flipped[i] <- flipped[i] ^^^ x

                  for b in [ flipped; Array.sub bytes 0 cut ] do
                      decode fv b |> ignore

                      match Block.openCursor fv (ReadOnlyMemory b) with
                      | Ok c ->
                          c.Seek(ReadOnlySpan "a"B) |> ignore
                          c.SeekToFirst()
                          let mutable go = true

                          while go do
                              match c.MoveNext() with
                              | Ok true -> ()
                              | _ -> go <- false
                      | Error _ -> ()

                  true)

          testCase "structural errors are reported"
          <| fun () ->
              let row k =
                  { Key = k
                    Value = RowValue.Value "v"B
                    Seq = 1UL
                    CreateTs = None
                    ExpireTs = None }

              let isError r =
                  match r with
                  | Error _ -> true
                  | Ok _ -> false

              // n = 0
              Expect.isTrue (isError (decode 2us [| 0uy; 0uy |])) "n = 0"
              // trailer longer than the body
              Expect.isTrue (isError (decode 2us [| 0uy; 5uy |])) "offsets beyond body"
              // unknown format
              Expect.isTrue (isError (decode 3us (modelBlock [ row "a"B ]))) "format 3"
              // 17 rows with row 16 sharing a prefix at its restart point
              let keys = [ for i in 0..16 -> [| 0x61uy; byte i |] ]
              let rows = keys |> List.map row

              let encoded =
                  rows
                  |> List.mapi (fun i r -> Row.encodeV2 (ReadOnlySpan(if i = 0 then [||] else keys[i - 1])) r)

              let off16 = encoded |> List.take 16 |> List.sumBy Array.length

              let body =
                  Array.concat (encoded @ [ [| 0uy; 0uy; byte (off16 >>> 8); byte off16; 0uy; 2uy |] ])

              match decode 2us body with
              | Error(DecodeError.Invalid(_, d)) -> Expect.stringContains d "shared" "names the shared prefix"
              | r -> failtestf "expected Invalid, got %A" r

              // two rows but the trailer claims two restart points
              let two = modelBlock [ row "a"B; row "b"B ]
              let rowsLen = two.Length - 4
              let r1 = (Row.encodeV2 ReadOnlySpan.Empty (row "a"B)).Length

              let forged =
                  Array.concat [ Array.sub two 0 rowsLen; [| 0uy; 0uy; 0uy; byte r1; 0uy; 2uy |] ]

              Expect.isTrue (isError (decode 2us forged)) "restart count mismatch"
              // trailing bytes in the row area
              let padded =
                  Array.concat [ Array.sub two 0 rowsLen; [| 0uy |]; Array.sub two rowsLen 4 ]

              Expect.isTrue (isError (decode 2us padded)) "rows do not fill the area" ]

let seeking =
    let seekCase =
        gen {
            let! rows = sortedRowsGen |> Gen.filter (fun r -> not r.IsEmpty)
            let! targets = Gen.listOf keyGen
            let existing = rows |> List.map (fun r -> r.Key)
            return rows, existing @ targets @ [ [| 0uy |]; Array.create 30 0xFFuy ]
        }

    testList
        "seek"
        [ testProp "v2 cursor Seek then MoveNext yields exactly the rows from the first key >= target"
          <| Prop.forAll (Arb.fromGen (Gen.zip seekCase blockSizeGen)) (fun ((rows, targets), bs) ->
              let bs = max bs 4096
              let (bytes, inBlock) = List.head (pack (bs * 16) rows)
              let c = openCursor 2us bytes

              targets
              |> List.forall (fun t ->
                  c.Seek(ReadOnlySpan t) |> okOrFail
                  cursorRows c = fromKey inBlock t))

          testProp "v1 cursor Seek then MoveNext agrees with the linear model"
          <| Prop.forAll (Arb.fromGen seekCase) (fun (rows, targets) ->
              let expectedRows =
                  rows
                  |> List.map (fun r ->
                      if r.Value = RowValue.Tombstone then
                          { r with ExpireTs = None }
                      else
                          r)

              let c = openCursor 1us (encodeV1 rows)

              targets
              |> List.forall (fun t ->
                  c.Seek(ReadOnlySpan t) |> okOrFail
                  cursorRows c = fromKey expectedRows t))

          testProp "SeekToFirst iterates every row (also for unsorted WAL blocks)"
          <| Prop.forAll (Arb.fromGen (walRowsGen |> Gen.filter (fun r -> not r.IsEmpty))) (fun rows ->
              let (bytes, inBlock) = List.head (pack 65536 rows)
              let c = openCursor 2us bytes
              let first = cursorRows c
              c.SeekToFirst()
              first = inBlock && cursorRows c = inBlock)

          testProp "lowerBound over decoded rows is the linear first index with key >= target"
          <| Prop.forAll (Arb.fromGen seekCase) (fun (rows, targets) ->
              let arr = Array.ofList rows

              targets
              |> List.forall (fun t ->
                  let expected =
                      arr
                      |> Array.tryFindIndex (fun r -> Bytes.compare r.Key t >= 0)
                      |> Option.defaultValue arr.Length

                  Block.lowerBound arr (ReadOnlySpan t) = expected)) ]

/// The SST block size of a compat case's writer sessions (`Block1Kib` … `Block64Kib`).
let compatBlockSize (case: string) : int =
    let path = IO.Path.Combine(CompressionProps.compatRoot, case, "expected.json")
    use doc = Text.Json.JsonDocument.Parse(IO.File.ReadAllText path)

    let sizes =
        [ for s in doc.RootElement.GetProperty("sessions").EnumerateArray() ->
              let v = s.GetProperty("builder").GetProperty("sst_block_size").GetString()
              let m = Text.RegularExpressions.Regex.Match(v, "Block(\\d+)Kib")
              int m.Groups[1].Value * 1024 ]
        |> List.distinct

    match sizes with
    | [ one ] -> one
    | other -> failtestf "sessions use several block sizes %A" other

/// Expected live entries of a compat case: (key, value, expire_ts).
let compatEntries (case: string) : (byte[] * byte[] * int64 option) list * CompressionCodec =
    let path = IO.Path.Combine(CompressionProps.compatRoot, case, "expected.json")
    use doc = Text.Json.JsonDocument.Parse(IO.File.ReadAllText path)
    let root = doc.RootElement

    let codec =
        match root.GetProperty("settings").GetProperty("compression_codec") with
        | c when c.ValueKind = Text.Json.JsonValueKind.String -> Enum.Parse<CompressionCodec>(c.GetString())
        | _ -> CompressionCodec.None

    let entries =
        [ for e in root.GetProperty("entries").EnumerateArray() ->
              let exp =
                  match e.TryGetProperty "expire_ts" with
                  | true, v when v.ValueKind = Text.Json.JsonValueKind.Number -> Some(v.GetInt64())
                  | _ -> None

              Bytes.ofHex (e.GetProperty("key_hex").GetString()),
              Bytes.ofHex (e.GetProperty("value_hex").GetString()),
              exp ]

    entries, codec

/// The rows of an SST's data blocks: the leading stored blocks that decode as v2 blocks.
let sstRows (codec: CompressionCodec) (file: byte[]) : (byte[] * RowEntry list) list =
    CompressionProps.chainedFrames file
    |> List.map (fun f -> Compression.decompress codec (ReadOnlySpan f) |> okOrFail)
    |> List.map (fun body -> body, decode 2us body)
    |> List.takeWhile (snd >> Result.isOk)
    |> List.map (fun (body, r) -> body, List.ofArray (okOrFail r))

let interop =
    testList
        "SlateDB-written blocks"
        [ for case in
              [ "bloom"
                "checkpoint"
                "codec-lz4"
                "codec-snappy"
                "codec-zlib"
                "codec-zstd"
                "compacted"
                "l0"
                "merge"
                "ttl"
                "wal-only" ] do
              testCase (sprintf "%s: data blocks decode, are ordered, and hold every live entry" case)
              <| fun () ->
                  if not (IO.Directory.Exists(IO.Path.Combine(CompressionProps.compatRoot, case))) then
                      skiptest "compat vectors not available"

                  let entries, codec = compatEntries case
                  let blockSize = compatBlockSize case
                  let all = ResizeArray<RowEntry>()
                  let mutable blocks = 0

                  for path in CompressionProps.compatSsts case do
                      let perBlock = sstRows codec (IO.File.ReadAllBytes path)
                      blocks <- blocks + perBlock.Length
                      let rows = perBlock |> List.collect snd
                      all.AddRange rows
                      // The fill rule reproduces SlateDB's block boundaries.
                      Expect.equal
                          (pack blockSize rows |> List.map fst)
                          (perBlock |> List.map fst)
                          (sprintf "%s: same blocks" path)

                      let isWal = path.Contains "/wal/"

                      for (a, b) in List.pairwise rows do
                          if isWal then
                              // A batch's rows share one seq and are key-ascending.
                              Expect.isTrue
                                  (a.Seq < b.Seq || (a.Seq = b.Seq && Bytes.compare a.Key b.Key < 0))
                                  (sprintf "%s: WAL (seq, key) ascending" path)
                          else
                              let c = Bytes.compare a.Key b.Key
                              Expect.isTrue (c < 0 || (c = 0 && a.Seq > b.Seq)) (sprintf "%s: (key asc, seq desc)" path)

                      // Seek through a cursor agrees with the decoded rows for compacted blocks.
                      if not isWal then
                          for (bytes, rs) in perBlock do
                              // SlateDB's own layout: re-encoding gives the same bytes.
                              Expect.equal bytes (modelBlock rs) "same block bytes as the model"

                              for r in rs do
                                  let c = openCursor 2us bytes
                                  c.Seek(ReadOnlySpan r.Key) |> okOrFail
                                  Expect.equal (cursorRows c) (fromKey rs r.Key) "seek"

                  Expect.isGreaterThan blocks 0 "data blocks found"

                  if case <> "merge" then
                      let rows = List.ofSeq all

                      for (k, v, exp) in entries do
                          let found =
                              rows
                              |> List.exists (fun r ->
                                  r.Key = k && r.Value = RowValue.Value v && (exp.IsNone || r.ExpireTs = exp))

                          Expect.isTrue found (sprintf "%s: entry %s present" case (Bytes.toHex k)) ]

let allTests = testList "Block" [ golden; builder; decoding; seeking; interop ]
