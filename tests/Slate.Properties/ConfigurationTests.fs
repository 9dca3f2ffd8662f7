/// Slate's option classes bound from `IConfiguration` (API.md: "Bindable from IConfiguration"):
/// the strict `SlateConfiguration` binder, and the general-purpose binder on the same classes.
module Slate.Properties.ConfigurationTests

open System
open System.Collections.Generic
open System.Threading.Tasks
open Expecto
open FsCheck
open FsCheck.FSharp
open Microsoft.Extensions.Configuration
open Slate
open Slate.Properties.TestUtil
open Slate.Properties.EngineTests.Eng

let private configOf (pairs: (string * string) list) : IConfiguration =
    ConfigurationBuilder()
        .AddInMemoryCollection(pairs |> List.map (fun (k, v) -> KeyValuePair<string, string>(k, v)))
        .Build()
    :> IConfiguration

let private slateOf (pairs: (string * string) list) : SlateOptions =
    (configOf pairs).GetSection("Slate").GetSlateOptions()

let private invalidBinding (what: string) (pairs: (string * string) list) (mentions: string list) : unit =
    let e =
        expectSlate SlateErrorKind.Invalid what (fun () ->
            slateOf pairs |> ignore
            Task.CompletedTask)

    for m in mentions do
        Expect.stringContains e.Message m (sprintf "%s: the message names %s" what m)

// ---------------------------------------------------------------- generated settings

/// One generated configuration: the values it should bind to and the strings that say them.
type private Settings =
    { BlockSize: int
      L0SstSizeBytes: int64
      FlushInterval: TimeSpan option
      WalEnabled: bool
      Compression: CompressionCodec
      DefaultTtl: TimeSpan option
      ObjectStoreMaxRetries: int option
      Compactor: (TimeSpan * int64 * float) option
      GcMinAge: TimeSpan }

let private caseGen (s: string) : Gen<string> =
    Gen.elements [ s; s.ToLowerInvariant(); s.ToUpperInvariant() ]

let private noneGen: Gen<string> =
    Gen.elements [ "none"; "None"; "OFF"; "disabled"; ""; "null" ]

/// A duration of whole milliseconds in one of the accepted spellings.
let private durationText (t: TimeSpan) : Gen<string> =
    let ms = int64 t.TotalMilliseconds

    Gen.elements (
        [ sprintf "%dms" ms; t.ToString("c"); sprintf "%d ms" ms ]
        @ (if ms % 1000L = 0L then
               [ sprintf "%ds" (ms / 1000L); sprintf "%d" (ms / 1000L) ]
           else
               [])
        @ (if ms % 60000L = 0L then
               [ sprintf "%dm" (ms / 60000L) ]
           else
               [])
    )

let private sizeText (n: int64) : Gen<string> =
    Gen.elements (
        [ string n ]
        @ (if n % 1024L = 0L then
               [ sprintf "%dKiB" (n / 1024L) ]
           else
               [])
        @ (if n % (1L <<< 20) = 0L then
               [ sprintf "%d MiB" (n >>> 20) ]
           else
               [])
    )

let private durationGen: Gen<TimeSpan> =
    Gen.oneof
        [ Gen.choose (1, 100_000)
          |> Gen.map (fun ms -> TimeSpan.FromMilliseconds(float ms))
          Gen.choose (1, 600) |> Gen.map (fun s -> TimeSpan.FromSeconds(float s)) ]

let private optionalDuration (key: string) (v: TimeSpan option) : Gen<(string * string) list> =
    gen {
        let! k = caseGen key

        match v with
        | Some t ->
            let! text = durationText t
            return [ k, text ]
        | None ->
            let! text = noneGen
            return [ k, text ]
    }

let private settingsGen: Gen<Settings * (string * string) list> =
    gen {
        let! blockSize = Gen.elements [ 1024; 2048; 4096; 8192; 16384; 32768; 65536 ]
        let! l0 = Gen.choose (1, 1 <<< 20) |> Gen.map (fun k -> int64 k * 1024L)
        let! flush = Gen.optionOf durationGen
        let! wal = Gen.elements [ true; false ]
        let! codec = Gen.elements (List.ofArray (Enum.GetValues<CompressionCodec>()))
        let! ttl = Gen.optionOf durationGen
        let! retries = Gen.optionOf (Gen.choose (0, 50))

        let! compactor =
            Gen.optionOf (
                Gen.map3
                    (fun p m r -> p, int64 m * 4096L, float r / 4.0)
                    durationGen
                    (Gen.choose (1, 1 <<< 16))
                    (Gen.choose (4, 40))
            )

        let! minAge = durationGen

        let s =
            { BlockSize = blockSize
              L0SstSizeBytes = l0
              FlushInterval = flush
              WalEnabled = wal
              Compression = codec
              DefaultTtl = ttl
              ObjectStoreMaxRetries = retries
              Compactor = compactor
              GcMinAge = minAge }

        let! kBlock = caseGen "BlockSize"
        let! vBlock = sizeText (int64 blockSize)
        let! kL0 = caseGen "L0SstSizeBytes"
        let! vL0 = sizeText l0
        let! flushPairs = optionalDuration "FlushInterval" flush
        let! vWal = caseGen (string wal)
        let! vCodec = caseGen (string codec)
        let! ttlPairs = optionalDuration "DefaultTtl" ttl

        let! retryPairs =
            match retries with
            | Some n -> Gen.constant [ "ObjectStoreMaxRetries", string n ]
            | None -> noneGen |> Gen.map (fun t -> [ "ObjectStoreMaxRetries", t ])

        let! compactorPairs =
            match compactor with
            | Some(poll, maxSst, ratio) ->
                gen {
                    let! p = durationText poll
                    let! m = sizeText maxSst

                    return
                        [ "Compactor:PollInterval", p
                          "compactor:maxsstsize", m
                          "Compactor:SizeRatio", ratio.ToString(Globalization.CultureInfo.InvariantCulture) ]
                }
            | None -> noneGen |> Gen.map (fun t -> [ "Compactor", t ])

        let! vAge = durationText minAge

        let pairs =
            [ kBlock, vBlock; kL0, vL0; "WalEnabled", vWal; "Compression", vCodec ]
            @ flushPairs
            @ ttlPairs
            @ retryPairs
            @ compactorPairs
            @ [ "GarbageCollector:MinAge", vAge ]

        return s, pairs |> List.map (fun (k, v) -> "Slate:" + k, v)
    }

let private observed (o: SlateOptions) : Settings =
    { BlockSize = o.BlockSize
      L0SstSizeBytes = o.L0SstSizeBytes
      FlushInterval = Option.ofNullable o.FlushInterval
      WalEnabled = o.WalEnabled
      Compression = o.Compression
      DefaultTtl = Option.ofNullable o.DefaultTtl
      ObjectStoreMaxRetries = Option.ofNullable o.ObjectStoreMaxRetries
      Compactor =
        o.Compactor
        |> Option.ofObj
        |> Option.map (fun c -> c.PollInterval, c.MaxSstSize, c.SizeRatio)
      GcMinAge =
        (if isNull o.GarbageCollector then
             TimeSpan.MinValue
         else
             o.GarbageCollector.MinAge) }

/// Every public settable property of an options object, as name = value text (nested one level).
let rec private describe (o: obj) : (string * string) list =
    [ for p in o.GetType().GetProperties() do
          if p.CanWrite then
              let v = p.GetValue o

              match v with
              | null -> yield p.Name, "null"
              | :? CompactorOptions
              | :? GarbageCollectorOptions -> yield! describe v |> List.map (fun (k, x) -> p.Name + ":" + k, x)
              | _ -> yield p.Name, string v ]

let allTests =
    testList
        "Configuration"
        [ testPropN 300 "generated settings bind to the values they spell (any key case, any accepted spelling)"
          <| Prop.forAll (Arb.fromGen settingsGen) (fun (expected, pairs) -> observed (slateOf pairs) = expected)

          test "an empty section binds to the defaults of every option class" {
              let empty = (configOf []).GetSection("Slate")
              Expect.equal (describe (empty.GetSlateOptions())) (describe (SlateOptions())) "SlateOptions"
              Expect.equal (describe (empty.GetReaderOptions())) (describe (ReaderOptions())) "ReaderOptions"

              Expect.equal (describe (empty.GetCompactorOptions())) (describe (CompactorOptions())) "CompactorOptions"

              Expect.equal
                  (describe (empty.GetGarbageCollectorOptions()))
                  (describe (GarbageCollectorOptions()))
                  "GarbageCollectorOptions"
          }

          test "a null value (as JSON null arrives) turns a nullable setting off; other settings keep their defaults" {
              let o = slateOf [ "Slate:Compactor", null; "Slate:FlushInterval", null ]
              Expect.isNull o.Compactor "no embedded compactor"
              Expect.equal o.FlushInterval (Nullable()) "no flush interval"
              Expect.isNotNull o.GarbageCollector "GC untouched"
              Expect.equal o.BlockSize 4096 "default block size"
          }

          test "reader, compactor and GC sections bind their own keys" {
              let c =
                  configOf
                      [ "Reader:Mode", "followlatest"
                        "Reader:CheckpointId", "6f9619ff-8b86-d011-b42d-00c04fc964ff"
                        "Reader:ManifestPollInterval", "250ms"
                        "Compactor:MaxConcurrentCompactions", "2"
                        "Gc:DryRun", "true"
                        "Gc:WalFences", "TRUE"
                        "Gc:Interval", "00:00:30" ]

              let r = c.GetSection("Reader").GetReaderOptions()
              Expect.equal r.Mode ReaderMode.FollowLatest "mode"
              Expect.equal r.CheckpointId (Nullable(Guid "6f9619ff-8b86-d011-b42d-00c04fc964ff")) "checkpoint"
              Expect.equal r.ManifestPollInterval (TimeSpan.FromMilliseconds 250.0) "poll"
              Expect.equal (c.GetSection("Compactor").GetCompactorOptions().MaxConcurrentCompactions) 2 "compactor"
              let g = c.GetSection("Gc").GetGarbageCollectorOptions()
              Expect.isTrue (g.DryRun && g.WalFences) "gc flags"
              Expect.equal g.Interval (TimeSpan.FromSeconds 30.0) "gc interval"
          }

          test "an unknown key is Invalid and names the key" {
              invalidBinding "typo" [ "Slate:BlockSzie", "8192" ] [ "Slate:BlockSzie"; "BlockSize" ]
              invalidBinding "nested typo" [ "Slate:Compactor:Pollinterval5", "1s" ] [ "Slate:Compactor:Pollinterval5" ]
          }

          test "a malformed value is Invalid and names the key, the value and what was expected" {
              invalidBinding "not a number" [ "Slate:BlockSize", "big" ] [ "Slate:BlockSize"; "'big'"; "integer" ]
              invalidBinding "int overflow" [ "Slate:BlockSize", "4GiB" ] [ "Slate:BlockSize" ]
              invalidBinding "negative duration" [ "Slate:ManifestPollInterval", "-5s" ] [ "duration" ]
              invalidBinding "not a boolean" [ "Slate:WalEnabled", "yes" ] [ "Slate:WalEnabled"; "true or false" ]
              invalidBinding "numeric enum" [ "Slate:Compression", "3" ] [ "Slate:Compression"; "Lz4" ]
              invalidBinding "unknown enum" [ "Slate:Compression", "brotli" ] [ "'brotli'" ]
              invalidBinding "a word for a section" [ "Slate:Compactor", "yes" ] [ "Slate:Compactor"; "'none'" ]
              invalidBinding "none for a required value" [ "Slate:BlockSize", "none" ] [ "Slate:BlockSize" ]
              invalidBinding "a section for a value" [ "Slate:BlockSize:x", "1" ] [ "Slate:BlockSize"; "not a section" ]
          }

          test "components cannot come from configuration" {
              invalidBinding "merge operator" [ "Slate:MergeOperator", "concat" ] [ "Slate:MergeOperator"; "component" ]
              invalidBinding "logger factory" [ "Slate:LoggerFactory:x", "1" ] [ "Slate:LoggerFactory"; "in code" ]
              invalidBinding "clock" [ "Slate:TimeProvider", "system" ] [ "Slate:TimeProvider" ]
          }

          test "the general-purpose binder fills the same classes" {
              let c =
                  configOf
                      [ "Slate:BlockSize", "8192"
                        "Slate:Compression", "Zstd"
                        "Slate:Compactor:PollInterval", "00:00:02"
                        "Slate:GarbageCollector:DryRun", "true" ]

              let o = c.GetSection("Slate").Get<SlateOptions>()
              Expect.equal o.BlockSize 8192 "block size"
              Expect.equal o.Compression CompressionCodec.Zstd "codec"
              Expect.equal o.Compactor.PollInterval (TimeSpan.FromSeconds 2.0) "nested"
              Expect.isTrue o.GarbageCollector.DryRun "gc"
          }

          test "options from configuration open a client; an invalid combination fails at open" {
              let store = ObjectStore.InMemory()

              let o =
                  slateOf
                      [ "Slate:FlushInterval", "none"
                        "Slate:Compactor", "off"
                        "Slate:GarbageCollector", "off"
                        "Slate:L0SstSizeBytes", "1KiB"
                        "Slate:BlockCacheBytes", "1MiB" ]

              let db = await (SlateClient.OpenAsync("cfg/db", store, o))

              for i in 1..50 do
                  await ((db.PutAsync(sprintf "k%03d" i, String('v', 100))).AsTask()) |> ignore

              awaitU (db.FlushAsync(FlushType.MemTable))
              let admin = SlateAdmin.Create("cfg/db", store)
              let m = await (admin.ReadManifestAsync())
              Expect.isGreaterThan m.L0.Count 1 "1 KiB memtables: several L0 SSTs"
              Expect.equal (await ((db.GetStringAsync "k042").AsTask())) (String('v', 100)) "read back"
              awaitU (db.CloseAsync())

              let bad =
                  slateOf [ "Slate:MaxUnflushedBytes", "1KiB"; "Slate:L0SstSizeBytes", "1MiB" ]

              let e =
                  expectSlate SlateErrorKind.Invalid "MaxUnflushedBytes below L0SstSizeBytes" (fun () ->
                      SlateClient.OpenAsync("cfg/bad", store, bad) :> Task)

              Expect.stringContains e.Message "MaxUnflushedBytes" "names the setting"
          } ]
