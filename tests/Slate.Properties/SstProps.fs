module Slate.Properties.SstProps

open System
open System.IO
open Expecto
open FsCheck
open FsCheck.FSharp
open Slate.Model
open Slate.Properties.TestUtil

let private codecs =
    [ CompressionCodec.None
      CompressionCodec.Snappy
      CompressionCodec.Zlib
      CompressionCodec.Lz4
      CompressionCodec.Zstd ]

let private options blockSize codec minFilterKeys =
    { BlockSize = blockSize
      Compression = codec
      BloomBitsPerKey = 10
      MinFilterKeys = minFilterKeys }

let private blockSizeGen =
    Gen.frequency
        [ 3, Gen.elements [ 1024; 2048; 4096; 8192; 16384; 32768; 65536 ]
          2, Gen.choose (64, 65536) ]

/// Rows in compacted order plus build options.
let private caseGen =
    gen {
        let! rows = Generators.sortedRowsGen
        let! bs = blockSizeGen
        let! codec = Gen.elements codecs
        let! minKeys = Gen.elements [ 0; 1; 5; 1000 ]
        return rows, options bs codec minKeys
    }

/// Point lookup over an in-memory SST the way the engine does it (§4.6).
let private lookup (bytes: byte[]) (meta: SstMeta) (key: byte[]) : RowEntry list =
    match Sst.candidateBlock meta.Index (ReadOnlySpan key) with
    | ValueNone -> []
    | ValueSome b ->
        [ for i in b .. meta.Index.Length - 1 do
              let struct (s, e) = Sst.blockRange meta i

              yield!
                  Sst.decodeBlock meta i (ReadOnlySpan(bytes, int s, int (e - s)))
                  |> okOrFail
                  |> Array.filter (fun r -> Bytes.equal r.Key key) ]

let private range (bytes: byte[]) (meta: SstMeta) (lo: byte[]) (hi: byte[]) : RowEntry list =
    let start =
        match Sst.candidateBlock meta.Index (ReadOnlySpan lo) with
        | ValueSome b -> b
        | ValueNone -> 0

    [ for i in start .. meta.Index.Length - 1 do
          let struct (s, e) = Sst.blockRange meta i
          yield! Sst.decodeBlock meta i (ReadOnlySpan(bytes, int s, int (e - s))) |> okOrFail ]
    |> List.filter (fun r -> Bytes.compare r.Key lo >= 0 && Bytes.compare r.Key hi < 0)

let private flip (bytes: byte[]) (i: int) (mask: byte) =
    let c = Array.copy bytes
    c[i] <- c[i] ^^^ mask
    c

let allTests =
    testList
        "Sst"
        [ testPropN
              150
              "compacted SSTs round-trip for every codec and block size; info in the file equals the returned info"
          <| Prop.forAll (Arb.fromGen caseGen) (fun (rows, o) ->
              let built = Sst.build o SstType.Compacted rows
              let meta = Sst.verifyAll built.Bytes |> okOrFail
              let back = Sst.readAll built.Bytes |> okOrFail

              back = rows
              && meta.Info = built.Info
              && meta.FormatVersion = 2us
              && (meta.Index.Length = 0 || meta.Index[0].Offset = 0UL)
              && built.Info.FilterOffset = (if rows.IsEmpty then 0UL else built.Info.FilterOffset)
              && built.Info.IndexOffset = built.Info.FilterOffset + built.Info.FilterLen
              && built.Info.FirstEntry = (List.tryHead rows |> Option.map (fun r -> r.Key))
              && built.Info.LastEntry = (List.tryLast rows |> Option.map (fun r -> r.Key)))

          testPropN 100 "filter presence: filter_len > 0 iff compacted, rows >= min_filter_keys and filters enabled"
          <| Prop.forAll (Arb.fromGen caseGen) (fun (rows, o) ->
              let o =
                  { o with
                      BloomBitsPerKey = (if rows.Length % 3 = 0 then 0 else 10) }

              let c = Sst.build o SstType.Compacted rows
              let w = Sst.build o SstType.Wal (rows |> List.sortBy (fun r -> r.Seq))

              let expect =
                  o.BloomBitsPerKey > 0 && rows.Length > 0 && rows.Length >= o.MinFilterKeys

              (c.Info.FilterLen > 0UL) = expect && w.Info.FilterLen = 0UL)

          testPropN
              150
              "point lookups and range scans equal a sorted-map model (many versions, tombstones, block boundaries)"
          <| Prop.forAll (Arb.fromGen (Gen.zip caseGen (Gen.listOf Generators.keyGen))) (fun ((rows, o), probes) ->
              let built = Sst.build o SstType.Compacted rows
              let meta = Sst.openBytes built.Bytes |> okOrFail
              let keys = (rows |> List.map (fun r -> r.Key)) @ probes

              let pointOk =
                  keys
                  |> List.forall (fun k ->
                      lookup built.Bytes meta k = (rows |> List.filter (fun r -> Bytes.equal r.Key k)))

              let rangeOk =
                  List.pairwise (List.sortWith Bytes.compare keys)
                  |> List.truncate 20
                  |> List.forall (fun (lo, hi) ->
                      let expected =
                          rows
                          |> List.filter (fun r -> Bytes.compare r.Key lo >= 0 && Bytes.compare r.Key hi < 0)

                      range built.Bytes meta lo hi = expected)

              pointOk && rangeOk)

          testPropN
              150
              "index separators: sep0 is empty; last(i-1) < sep(i) <= first(i), or sep(i) = first(i) = last(i-1)"
          <| Prop.forAll (Arb.fromGen caseGen) (fun (rows, o) ->
              let built =
                  Sst.build
                      { o with
                          BlockSize = min o.BlockSize 512 }
                      SstType.Compacted
                      rows

              let meta = Sst.openBytes built.Bytes |> okOrFail

              let blocks =
                  [ for i in 0 .. meta.Index.Length - 1 do
                        let struct (s, e) = Sst.blockRange meta i

                        Sst.decodeBlock meta i (ReadOnlySpan(built.Bytes, int s, int (e - s)))
                        |> okOrFail ]

              meta.Index.Length = 0
              || (meta.Index[0].FirstKey.Length = 0
                  && [ 1 .. meta.Index.Length - 1 ]
                     |> List.forall (fun i ->
                         let sep = meta.Index[i].FirstKey
                         let last = (Array.last (List.item (i - 1) blocks)).Key
                         let first = (Array.head (List.item i blocks)).Key

                         (Bytes.compare last sep < 0 && Bytes.compare sep first <= 0)
                         || (Bytes.equal sep first && Bytes.equal first last))))

          testPropN
              100
              "WAL SSTs round-trip in seq order, index keys are u64be seqs, no filter, no stats, no last_entry"
          <| Prop.forAll (Arb.fromGen caseGen) (fun (rows, o) ->
              let walRows = rows |> List.sortBy (fun r -> r.Seq)
              let built = Sst.build o SstType.Wal walRows
              let meta = Sst.verifyAll built.Bytes |> okOrFail

              Sst.readAll built.Bytes |> okOrFail = walRows
              && built.Info.SstType = SstType.Wal
              && built.Info.LastEntry.IsNone
              && built.Info.StatsLen = 0UL
              && built.Info.FilterLen = 0UL
              && built.Info.FirstEntry = (List.tryHead walRows |> Option.map (fun r -> BigEndian.bytesOfU64 r.Seq))
              && (meta.Index
                  |> Array.mapi (fun i m ->
                      let struct (s, e) = Sst.blockRange meta i

                      let first =
                          (Sst.decodeBlock meta i (ReadOnlySpan(built.Bytes, int s, int (e - s)))
                           |> okOrFail)[0]

                      Bytes.equal m.FirstKey (BigEndian.bytesOfU64 first.Seq))
                  |> Array.forall id))

          test "the fence is a compacted SST with no rows, an empty index, zero stats and filter_offset 0" {
              for codec in codecs do
                  let f = Sst.empty (options 4096 codec 1000)
                  let meta = Sst.verifyAll f.Bytes |> okOrFail
                  Expect.equal meta.Index.Length 0 "no blocks"
                  Expect.equal f.Info.FilterOffset 0UL "filter_offset"
                  Expect.equal f.Info.SstType SstType.Compacted "type"
                  Expect.isNone f.Info.FirstEntry "no first entry"
                  Expect.isGreaterThan f.Info.StatsLen 0UL "has stats"
                  Expect.equal (Sst.readAll f.Bytes |> okOrFail) [] "no rows"
          }

          testPropN
              30
              "flipping any single byte of an SST (blocks, filter, index, stats, info, footer) is a decode error"
          <| Prop.forAll (Arb.fromGen (Gen.zip (Gen.elements codecs) (Gen.choose (1, 255)))) (fun (codec, mask) ->
              let rows =
                  [ for i in 0..59 ->
                        { Key = Text.Encoding.ASCII.GetBytes(sprintf "key-%04d" i)
                          Value =
                            (if i % 7 = 0 then
                                 RowValue.Tombstone
                             else
                                 RowValue.Value(Array.create (i % 50) (byte i)))
                          Seq = uint64 (1000 - i)
                          CreateTs = Some(1_700_000_000_000L + int64 i)
                          ExpireTs = None } ]

              let built = Sst.build (options 256 codec 10) SstType.Compacted rows
              Expect.isGreaterThan built.Info.FilterLen 0UL "has a filter"

              [ 0 .. built.Bytes.Length - 1 ]
              |> List.forall (fun i ->
                  match Sst.verifyAll (flip built.Bytes i (byte mask)) with
                  | Error _ -> true
                  | Ok _ -> failtestf "flip of byte %d (mask %02x) of %d was not detected" i mask built.Bytes.Length))

          test "truncated and tiny SSTs are errors, never exceptions" {
              let rows =
                  [ for i in 0..40 ->
                        { Key = Text.Encoding.ASCII.GetBytes(sprintf "k%03d" i)
                          Value = RowValue.Value(Array.create 20 (byte i))
                          Seq = uint64 i
                          CreateTs = None
                          ExpireTs = None } ]

              let built = Sst.build (options 1024 CompressionCodec.None 1) SstType.Compacted rows

              for n in 0 .. built.Bytes.Length - 1 do
                  Expect.isError (Sst.verifyAll built.Bytes[0 .. n - 1]) (sprintf "prefix of %d bytes" n)
          }

          test "re-encoding the rows of SlateDB's uncompressed SSTs reproduces its data and filter bytes exactly" {
              let mutable compared = 0

              for case in [ "l0"; "bloom"; "compacted" ] do
                  let doc =
                      Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(compatDir (), case, "expected.json")))

                  let blockSize =
                      let session = doc.RootElement.GetProperty("sessions").EnumerateArray() |> Seq.head

                      match session.GetProperty("builder").GetProperty("sst_block_size").GetString() with
                      | "Block1Kib" -> 1024
                      | _ -> 4096

                  for f in Directory.GetFiles(Path.Combine(compatDir (), case, "db", "compacted")) do
                      let bytes = File.ReadAllBytes f
                      let meta = Sst.openBytes bytes |> okOrFail

                      if meta.Info.Compression = CompressionCodec.None then
                          let rows = Sst.readAll bytes |> okOrFail

                          let again =
                              Sst.build (options blockSize CompressionCodec.None 1000) SstType.Compacted rows

                          let n = int (meta.Info.FilterOffset + meta.Info.FilterLen)
                          Expect.equal again.Bytes[0 .. n - 1] bytes[0 .. n - 1] (sprintf "%s data and filter bytes" f)
                          Expect.equal again.Info.FilterLen meta.Info.FilterLen "filter length"

                          let statsA =
                              Sst.decodeStats
                                  again.Info
                                  (ReadOnlySpan(again.Bytes, int again.Info.StatsOffset, int again.Info.StatsLen))
                              |> okOrFail

                          let statsB =
                              Sst.decodeStats
                                  meta.Info
                                  (ReadOnlySpan(bytes, int meta.Info.StatsOffset, int meta.Info.StatsLen))
                              |> okOrFail

                          Expect.equal statsA statsB "stats"
                          compared <- compared + 1

              Expect.isGreaterThan compared 3 "compared several SSTs"
          }

          test "SlateDB's WAL SSTs re-encode to the same data blocks" {
              let mutable compared = 0

              for (case, blockSize) in [ "wal-only", 4096; "l0", 1024 ] do
                  for f in Directory.GetFiles(Path.Combine(compatDir (), case, "db", "wal")) do
                      let bytes = File.ReadAllBytes f
                      let meta = Sst.openBytes bytes |> okOrFail

                      if meta.Index.Length > 0 && meta.Info.Compression = CompressionCodec.None then
                          let rows = Sst.readAll bytes |> okOrFail

                          let again =
                              Sst.build (options blockSize CompressionCodec.None 1000) SstType.Wal rows

                          let n = int meta.Info.FilterOffset
                          Expect.equal again.Bytes[0 .. n - 1] bytes[0 .. n - 1] (sprintf "%s data bytes" f)
                          Expect.equal again.Info.FirstEntry meta.Info.FirstEntry "first entry"
                          compared <- compared + 1

              Expect.isGreaterThan compared 2 "compared several WAL SSTs"
          } ]
