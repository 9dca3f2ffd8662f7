module Slate.Properties.BloomProps

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open Slate.Model
open Slate.Properties.Generators
open Slate.Properties.TestUtil

let private hash (s: string) =
    Bloom.sipHash13 (ReadOnlySpan(Text.Encoding.UTF8.GetBytes s))

let private build (bpk: int) (keys: byte[] list) =
    Bloom.build bpk (ReadOnlySpan(keys |> List.map Bloom.hashKey |> Array.ofList))

let private mayContain (data: byte[]) (key: byte[]) =
    Bloom.mayContain (ReadOnlySpan data) (Bloom.hashKey key)

let private u64Key (i: int) = BigEndian.bytesOfU64 (uint64 i)

/// A composite filter body (later SlateDB) for the reader tests.
let encodeComposite (entries: (string * byte[]) list) : byte[] =
    let out = Collections.Generic.List<byte>()

    let u16 (v: int) =
        out.AddRange [| byte (v >>> 8); byte v |]

    u16 entries.Length

    for (name, data) in entries do
        let n = Text.Encoding.UTF8.GetBytes name
        u16 n.Length
        out.AddRange n
        out.AddRange(BigEndian.bytesOfU64 (uint64 data.Length))
        out.AddRange data

    out.ToArray()

let golden =
    testList
        "golden vectors"
        [ testCase "SipHash-1-3 vectors of SPEC §4.1"
          <| fun () ->
              Expect.equal (hash "") 0xd1fba762150c532cUL "empty"
              Expect.equal (hash "a") 0x407448d2b89b1813UL "a"
              Expect.equal (hash "hello") 0xe2e77b41cb4e1f9eUL "hello"
              Expect.equal (Bloom.sipHash13 (ReadOnlySpan(Array.init 16 byte))) 0x8972188433a5c5b7UL "00..0f"

          testCase "numProbes is trunc(bits × 0.69f)"
          <| fun () ->
              Expect.equal (Bloom.numProbes 10) 6 "10"
              Expect.equal (Bloom.numProbes 1) 0 "1"
              Expect.equal (Bloom.numProbes 20) 13 "20 (13.8)"
              Expect.equal (Bloom.numProbes 100) 69 "100 (68.99999 in f32 is 69.0)"

          testCase "SPEC §4.7 vector: bits_per_key 10, keys a and hello"
          <| fun () ->
              let data = build 10 [ "a"B; "hello"B ]
              let m = (data.Length - 2) * 8
              Expect.equal (Bloom.probes (hash "a") m 6) [| 19; 13; 8; 5; 5; 9 |] "probes(a)"
              Expect.equal (Bloom.probes (hash "hello") m 6) [| 14; 23; 9; 21; 12; 7 |] "probes(hello)"
              Expect.equal data (Bytes.ofHex "0006a073a8") "data"

          testCase "enhanced double hashing over a large filter (h1 = 0xDEADBEEF, h2 = 0xDF77EF56)"
          <| fun () ->
              Expect.equal
                  (Bloom.probes 0xDF77EF56DEADBEEFUL 1_000_000 7)
                  [| 928559; 107781; 287004; 466229; 645457; 824689; 3926 |]
                  "probes"

          testCase "filter size is ceil(n × bits / 8) bytes plus the 2-byte header"
          <| fun () ->
              Expect.equal (build 10 []).Length 2 "no keys"
              Expect.equal (build 10 [ "a"B ]).Length 4 "1 key: 2 bytes"
              Expect.equal (Bloom.filterBytes 2230 10) 2788 "2230 keys"
              Expect.equal (Bloom.filterBytes 3 7) 3 "21 bits" ]

let props =
    testList
        "filter"
        [ testProp "no false negatives for any added key, at any bits per key"
          <| Prop.forAll (Arb.fromGen (Gen.zip (Gen.choose (1, 24)) (Gen.listOf keyGen))) (fun (bpk, keys) ->
              let data = build bpk keys
              keys |> List.forall (mayContain data))

          testProp "duplicate hashes add nothing but size"
          <| Prop.forAll (Arb.fromGen (Gen.nonEmptyListOf keyGen)) (fun keys ->
              let twice = build 10 (keys @ keys)

              twice.Length - 2 = Bloom.filterBytes (2 * keys.Length) 10
              && keys |> List.forall (mayContain twice))

          testProp "probes are k positions below m, and mayContain is 'all probe bits set'"
          <| Prop.forAll (Arb.fromGen (Gen.zip (Gen.nonEmptyListOf keyGen) keyGen)) (fun (keys, q) ->
              let data = build 10 keys
              let m = (data.Length - 2) * 8
              let ps = Bloom.probes (Bloom.hashKey q) m 6

              let allSet =
                  ps |> Array.forall (fun b -> data[2 + b / 8] &&& (1uy <<< (b % 8)) <> 0uy)

              ps.Length = 6
              && ps |> Array.forall (fun p -> p >= 0 && p < m)
              && allSet = mayContain data q)

          testCase "false-positive rate at 10 bits/key over 100,000 keys is within 2x of theory"
          <| fun () ->
              let n = 100_000
              let data = build 10 [ for i in 0 .. n - 1 -> u64Key i ]

              for i in 0 .. n - 1 do
                  if not (mayContain data (u64Key i)) then
                      failtestf "false negative for %d" i

              let fp =
                  seq { n .. 2 * n - 1 }
                  |> Seq.filter (fun i -> mayContain data (u64Key i))
                  |> Seq.length

              let rate = float fp / float n
              let k = 6.0
              let m = float ((data.Length - 2) * 8)
              let theory = (1.0 - exp (-k * float n / m)) ** k
              Expect.isLessThan rate (2.0 * theory) (sprintf "rate %f vs theory %f" rate theory)
              Expect.isGreaterThan rate (theory / 2.0) (sprintf "rate %f vs theory %f" rate theory)

          testCase "false positives stay under 2% over 10^4 absent keys"
          <| fun () ->
              let data = build 10 [ for i in 0..9999 -> u64Key i ]

              let fp =
                  seq { 1_000_000..1_009_999 }
                  |> Seq.filter (fun i -> mayContain data (u64Key i))
                  |> Seq.length

              Expect.isLessThanOrEqual fp 200 "at most 2%"

          testCase "an empty filter (m = 0) and a truncated one answer 'may contain'"
          <| fun () ->
              Expect.isTrue (mayContain (build 10 []) "x"B) "m = 0"
              Expect.isTrue (Bloom.mayContain ReadOnlySpan.Empty 1UL) "no header" ]

let filterBlock =
    let isError r =
        match r with
        | Error _ -> true
        | Ok _ -> false

    testList
        "filter block"
        [ testProp "legacy body is the bloom data itself"
          <| Prop.forAll (Arb.fromGen (Gen.listOf keyGen)) (fun keys ->
              let data = build 10 keys
              Bloom.tryDecodeFilterBlock FilterFormat.Legacy data = Ok(Some data))

          testProp "composite body yields the _bf entry and skips unknown names"
          <| Prop.forAll
              (Arb.fromGen (Gen.zip3 (Gen.listOf keyGen) (Gen.arrayOf byteGen) (Gen.elements [ 0; 1; 2 ])))
              (fun (keys, other, pos) ->
                  let data = build 10 keys
                  let others = [ "_pf", other; "x", [||] ]
                  let entries = List.insertAt pos ("_bf", data) others
                  Bloom.tryDecodeFilterBlock FilterFormat.Composite (encodeComposite entries) = Ok(Some data))

          testCase "composite body without _bf is None; malformed bodies are errors"
          <| fun () ->
              let body = encodeComposite [ "_pf", [| 1uy; 2uy; 3uy |] ]
              Expect.equal (Bloom.tryDecodeFilterBlock FilterFormat.Composite body) (Ok None) "none"
              Expect.equal (Bloom.tryDecodeFilterBlock FilterFormat.Composite (encodeComposite [])) (Ok None) "empty"
              let good = encodeComposite [ "_bf", build 10 [ "a"B ] ]

              for n in 0 .. good.Length - 1 do
                  Expect.isTrue
                      (isError (Bloom.tryDecodeFilterBlock FilterFormat.Composite (Array.sub good 0 n)))
                      "truncated"

              Expect.isTrue
                  (isError (Bloom.tryDecodeFilterBlock FilterFormat.Composite (Array.append good [| 0uy |])))
                  "trailing"

              Expect.isTrue
                  (isError (Bloom.tryDecodeFilterBlock FilterFormat.Composite (encodeComposite [ "_bf", [| 6uy |] ])))
                  "short bloom"

              Expect.isTrue (isError (Bloom.tryDecodeFilterBlock FilterFormat.Legacy [| 0uy |])) "legacy short"

              Expect.isTrue
                  (isError (Bloom.tryDecodeFilterBlock (enum<FilterFormat> 7) [| 0uy; 0uy |]))
                  "unknown format"

          testPropN 300 "decoding arbitrary composite bodies never throws"
          <| Prop.forAll (Arb.fromGen (Gen.arrayOf byteGen)) (fun junk ->
              Bloom.tryDecodeFilterBlock FilterFormat.Composite junk |> ignore
              true) ]

let interop =
    testCase "the bloom filter of SlateDB's L0 in compat case 'bloom' equals ours byte for byte"
    <| fun () ->
        let dir = IO.Path.Combine(CompressionProps.compatRoot, "bloom", "db", "compacted")

        if not (IO.Directory.Exists dir) then
            skiptest "compat vectors not available"

        let file =
            IO.File.ReadAllBytes(IO.Directory.GetFiles(dir, "*.sst") |> Array.exactlyOne)
        // Codec None: stored blocks are bodies; the data blocks come first, then the filter.
        let frames = CompressionProps.chainedFrames file

        let dataBlocks =
            frames
            |> List.map (fun f -> f, Block.decode 2us (ReadOnlySpan f))
            |> List.takeWhile (snd >> Result.isOk)

        let rows = dataBlocks |> List.collect (fun (_, r) -> List.ofArray (okOrFail r))
        let filterFrame = frames[dataBlocks.Length]
        let ours = build 10 (rows |> List.map (fun r -> r.Key))
        Expect.equal rows.Length 2230 "rows of the L0 (2140 live + 90 tombstones)"
        Expect.equal filterFrame.Length 2790 "filter_len 2794 minus the CRC"
        Expect.equal ours filterFrame "same filter bytes"
        Expect.equal (Bloom.tryDecodeFilterBlock FilterFormat.Legacy filterFrame) (Ok(Some ours)) "decodes"

        // The same filter from expected.json alone (live keys ∪ deleted keys).
        let entries, _ = BlockProps.compatEntries "bloom"
        let path = IO.Path.Combine(CompressionProps.compatRoot, "bloom", "expected.json")
        use doc = Text.Json.JsonDocument.Parse(IO.File.ReadAllText path)

        let deleted =
            [ for d in doc.RootElement.GetProperty("deleted_keys").EnumerateArray() -> Bytes.ofHex (d.GetString()) ]

        let keys = (entries |> List.map (fun (k, _, _) -> k)) @ deleted
        Expect.equal (build 10 keys) filterFrame "rebuilt from expected.json"

        // Absent keys: the filter is what a reader consults; count how many it rejects.
        let absent =
            [ for d in doc.RootElement.GetProperty("absent_keys").EnumerateArray() -> Bytes.ofHex (d.GetString()) ]

        let rejected =
            absent |> List.filter (fun k -> not (mayContain filterFrame k)) |> List.length

        Expect.isGreaterThan rejected (absent.Length * 9 / 10) "most absent keys rejected"

let allTests = testList "Bloom" [ golden; props; filterBlock; interop ]
