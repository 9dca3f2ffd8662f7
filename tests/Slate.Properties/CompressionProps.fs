module Slate.Properties.CompressionProps

open System
open System.Buffers.Binary
open Expecto
open FsCheck
open FsCheck.FSharp
open Slate.Model
open Slate.Properties.TestUtil

let codecs =
    [ CompressionCodec.None
      CompressionCodec.Snappy
      CompressionCodec.Zlib
      CompressionCodec.Lz4
      CompressionCodec.Zstd ]

let compressedCodecs = codecs |> List.filter (fun c -> c <> CompressionCodec.None)

let private compress c (b: byte[]) = Compression.compress c (ReadOnlySpan b)

let private decompress c (b: byte[]) =
    Compression.decompress c (ReadOnlySpan b)

/// Random bytes, compressible text-like bytes and runs: both literal and match paths of the codecs.
let bodyGen: Gen<byte[]> =
    Gen.frequency
        [ 1, Gen.constant [||]
          3, Gen.arrayOf (Gen.choose (0, 255) |> Gen.map byte)
          3,
          gen {
              let! words = Gen.listOf (Gen.elements [ "slate"; "db"; "key"; "value"; "\n"; " "; "bloom" ])
              let! reps = Gen.choose (1, 40)
              return Text.Encoding.ASCII.GetBytes(String.concat "" (List.replicate reps (String.concat "" words)))
          }
          1,
          gen {
              let! b = Gen.choose (0, 255)
              let! n = Gen.choose (1, 70_000)
              return Array.create n (byte b)
          } ]

let private codecGen = Gen.elements codecs

/// Decompression that must not throw: returns true whatever the Result.
let private neverThrows (c: CompressionCodec) (frame: byte[]) : bool =
    match decompress c frame with
    | Ok _
    | Error(DecodeError.Decompression _) -> true
    | Error e -> failtestf "unexpected error kind %A" e

let roundTrip =
    testList
        "round trip"
        [ testProp "decompress (compress body) = body for every codec"
          <| Prop.forAll (Arb.fromGen (Gen.zip codecGen bodyGen)) (fun (c, body) ->
              let frame = compress c body
              decompress c frame = Ok body)

          testCase "4 MiB of zeros (maximal compression ratios) round-trips for every codec"
          <| fun () ->
              let body = Array.zeroCreate 4_194_304

              for c in codecs do
                  Expect.equal (decompress c (compress c body)) (Ok body) (sprintf "%A" c)

          testCase "the empty body round-trips for every codec"
          <| fun () ->
              for c in codecs do
                  Expect.equal (decompress c (compress c [||])) (Ok [||]) (sprintf "%A" c) ]

let framing =
    testList
        "frame formats"
        [ testProp "None is the body as is"
          <| Prop.forAll (Arb.fromGen bodyGen) (fun body -> compress CompressionCodec.None body = body)

          testProp "Lz4 starts with the uncompressed length as u32 little-endian"
          <| Prop.forAll (Arb.fromGen bodyGen) (fun body ->
              let f = compress CompressionCodec.Lz4 body
              BinaryPrimitives.ReadUInt32LittleEndian(ReadOnlySpan(f, 0, 4)) = uint32 body.Length)

          testProp "Snappy starts with the uncompressed length as a varint (raw block, no stream header)"
          <| Prop.forAll (Arb.fromGen bodyGen) (fun body ->
              let f = compress CompressionCodec.Snappy body

              match Varint.tryRead (ReadOnlySpan f) 0 with
              | ValueSome(struct (n, _)) -> n = uint32 body.Length
              | ValueNone -> false)

          testProp "Zlib is an RFC 1950 stream (deflate CMF, header check, Adler-32 trailer)"
          <| Prop.forAll (Arb.fromGen bodyGen) (fun body ->
              let f = compress CompressionCodec.Zlib body
              let adler = BinaryPrimitives.ReadUInt32BigEndian(ReadOnlySpan(f, f.Length - 4, 4))
              let mutable a = 1u
              let mutable b = 0u

              for x in body do
                  a <- (a + uint32 x) % 65521u
                  b <- (b + a) % 65521u

              f[0] &&& 0x0Fuy = 8uy
              && (int f[0] * 256 + int f[1]) % 31 = 0
              && adler = ((b <<< 16) ||| a))

          testProp "Zstd is a single frame with the content size and without a checksum"
          <| Prop.forAll (Arb.fromGen bodyGen) (fun body ->
              let f = compress CompressionCodec.Zstd body
              let magic = BinaryPrimitives.ReadUInt32LittleEndian(ReadOnlySpan(f, 0, 4))
              let fhd = f[4]
              let singleSegment = fhd &&& 0x20uy <> 0uy
              let fcsFlag = fhd >>> 6
              let checksum = fhd &&& 0x04uy <> 0uy

              magic = 0xFD2FB528u
              && (singleSegment || fcsFlag <> 0uy)
              && not checksum
              && ZstdSharp.Decompressor.GetDecompressedSize(ReadOnlySpan f) = uint64 body.Length) ]

let robustness =
    testList
        "robustness"
        [ testPropN 300 "decompressing random bytes never throws"
          <| Prop.forAll
              (Arb.fromGen (Gen.zip codecGen (Gen.arrayOf (Gen.choose (0, 255) |> Gen.map byte))))
              (fun (c, junk) -> neverThrows c junk)

          testPropN 300 "decompressing a frame with one byte changed never throws"
          <| Prop.forAll
              (Arb.fromGen (
                  gen {
                      let! c = Gen.elements compressedCodecs
                      let! body = bodyGen |> Gen.filter (fun b -> b.Length > 0)
                      let frame = compress c body
                      let! i = Gen.choose (0, frame.Length - 1)
                      let! x = Gen.choose (1, 255)
                      return c, frame, i, byte x
                  }
              ))
              (fun (c, frame, i, x) ->
                  let f = Array.copy frame
                  f[i] <- f[i] ^^^ x
                  neverThrows c f)

          testPropN 200 "every proper truncation of a compressed frame is an error"
          <| Prop.forAll
              (Arb.fromGen (
                  gen {
                      let! c = codecGen
                      let! body = bodyGen
                      let frame = compress c body
                      let! n = Gen.choose (0, max 0 (frame.Length - 1))
                      return c, body, Array.sub frame 0 n
                  }
              ))
              (fun (c, body, cut) ->
                  match decompress c cut with
                  | Ok out -> c = CompressionCodec.None || body.Length = 0 && out = body
                  | Error(DecodeError.Decompression _) -> true
                  | Error _ -> false)

          testCase "an unknown codec value is Invalid"
          <| fun () ->
              match decompress (enum<CompressionCodec> 9) [| 1uy |] with
              | Error(DecodeError.Invalid _) -> ()
              | r -> failtestf "expected Invalid, got %A" r

          testCase "errors name the codec"
          <| fun () ->
              for c in compressedCodecs do
                  match decompress c [| 0xFFuy; 0xFFuy; 0xFFuy; 0xFFuy; 0xFFuy; 0x0Fuy |] with
                  | Error(DecodeError.Decompression(what, _)) ->
                      Expect.stringContains what (Compression.codecName c) "codec named"
                  | r -> failtestf "%A: expected a decompression error, got %A" c r ]

let bombs =
    let isTooLarge r =
        match r with
        | Error(DecodeError.Decompression(_, d)) -> d.Contains "limit"
        | _ -> false

    testList
        "decompression bombs"
        [ testCase "Lz4 declaring 2 GiB is rejected before allocating"
          <| fun () ->
              let f = Array.zeroCreate 8
              BinaryPrimitives.WriteUInt32LittleEndian(Span f, 0x80000000u)
              Expect.isTrue (isTooLarge (decompress CompressionCodec.Lz4 f)) "rejected"

          testCase "Snappy declaring 4 GiB - 1 is rejected"
          <| fun () ->
              let f = [| 0xFFuy; 0xFFuy; 0xFFuy; 0xFFuy; 0x0Fuy; 0uy |]

              match decompress CompressionCodec.Snappy f with
              | Error(DecodeError.Decompression _) -> ()
              | r -> failtestf "expected an error, got %A" r

          testCase "Zstd with a truncated header declaring 2^40 bytes is an error"
          <| fun () ->
              // magic, FHD: FCS 8 bytes + single segment, then the 8-byte content size, no blocks.
              let f = Array.zeroCreate 20
              BinaryPrimitives.WriteUInt32LittleEndian(Span f, 0xFD2FB528u)
              f[4] <- 0xE0uy
              BinaryPrimitives.WriteUInt64LittleEndian(Span(f, 5, 8), 1UL <<< 40)

              match decompress CompressionCodec.Zstd f with
              | Error(DecodeError.Decompression _) -> ()
              | r -> failtestf "expected an error, got %A" r

          testCase "a 32 KiB Zstd frame of RLE blocks expanding beyond 1 GiB is rejected"
          <| fun () ->
              // No content size; window 128 KiB; 8193 RLE blocks of 128 KiB each.
              let blocks = 8193
              let f = Array.zeroCreate (6 + 4 * blocks)
              BinaryPrimitives.WriteUInt32LittleEndian(Span f, 0xFD2FB528u)
              f[4] <- 0x00uy
              f[5] <- 0x38uy

              for i in 0 .. blocks - 1 do
                  let last = if i = blocks - 1 then 1 else 0
                  let h = (131072 <<< 3) ||| (1 <<< 1) ||| last
                  let o = 6 + 4 * i
                  f[o] <- byte h
                  f[o + 1] <- byte (h >>> 8)
                  f[o + 2] <- byte (h >>> 16)
                  f[o + 3] <- 0x41uy

              Expect.isTrue (isTooLarge (decompress CompressionCodec.Zstd f)) "rejected"

          testCase "Zstd frames without a content size decompress too"
          <| fun () ->
              let body = Array.init 5000 (fun i -> byte (i % 7))
              use c = new ZstdSharp.Compressor(3)
              c.SetParameter(ZstdSharp.Unsafe.ZSTD_cParameter.ZSTD_c_contentSizeFlag, 0)
              let frame = c.Wrap(ReadOnlySpan body).ToArray()
              Expect.equal (frame[4] &&& 0xE0uy) 0uy "no content size, not single-segment"
              Expect.equal (decompress CompressionCodec.Zstd frame) (Ok body) "decoded" ]

/// SlateDB-written sample databases (SPEC §10); tests skip when the folder is absent.
let compatRoot = "/work/shared/compat/slatedb-0.12.1"

/// The stored blocks of an SST before its `SsTableInfo`, found without the metadata by following
/// the CRC chain: each stored block is `frame ‖ crc32be(frame)` (SPEC §4.4). Returns the frames.
let chainedFrames (file: byte[]) : byte[] list =
    if file.Length <= 10 then
        []
    else
        let metaOff =
            int (BinaryPrimitives.ReadUInt64BigEndian(ReadOnlySpan(file, file.Length - 10, 8)))

        let frames = ResizeArray()
        let mutable start = 0
        let mutable stuck = false

        while not stuck && start < metaOff do
            let crc = System.IO.Hashing.Crc32()
            let mutable l = start
            let mutable found = -1

            while found < 0 && l + 4 <= metaOff do
                if l > start then
                    let stored = BinaryPrimitives.ReadUInt32BigEndian(ReadOnlySpan(file, l, 4))

                    if crc.GetCurrentHashAsUInt32() = stored then
                        found <- l

                if found < 0 then
                    crc.Append(ReadOnlySpan(file, l, 1))
                    l <- l + 1

            if found < 0 then
                stuck <- true
            else
                frames.Add(Array.sub file start (found - start))
                start <- found + 4

        if stuck then
            failtestf "CRC chain broken at byte %d" start

        List.ofSeq frames

/// All `.sst` files of a compat case (compacted and WAL).
let compatSsts (case: string) : string list =
    let dir = IO.Path.Combine(compatRoot, case, "db")

    [ for sub in [ "compacted"; "wal" ] do
          let d = IO.Path.Combine(dir, sub)

          if IO.Directory.Exists d then
              yield! IO.Directory.GetFiles(d, "*.sst") |> Array.sort ]

let interop =
    testList
        "SlateDB-written frames"
        [ for (case, codec) in
              [ "codec-snappy", CompressionCodec.Snappy
                "codec-zlib", CompressionCodec.Zlib
                "codec-lz4", CompressionCodec.Lz4
                "codec-zstd", CompressionCodec.Zstd ] do
              testCase (sprintf "every block of every SST in %s decompresses" case)
              <| fun () ->
                  if not (IO.Directory.Exists(IO.Path.Combine(compatRoot, case))) then
                      skiptest "compat vectors not available"

                  let mutable blocks = 0

                  for path in compatSsts case do
                      for frame in chainedFrames (IO.File.ReadAllBytes path) do
                          match decompress codec frame with
                          | Ok body ->
                              blocks <- blocks + 1
                              // Our own frame of the same body decompresses to it too.
                              Expect.equal (decompress codec (compress codec body)) (Ok body) "re-framed"
                          | Error e -> failtestf "%s: %s" path (DecodeError.describe e)

                  Expect.isGreaterThan blocks 10 "found blocks" ]

let allTests =
    testList "Compression" [ roundTrip; framing; robustness; bombs; interop ]
