module Slate.Properties.Main

open Expecto
open Expecto.Impl

let allTests =
    testList
        "Slate"
        [ PurityTests.allTests
          PreludeProps.allTests
          IdsProps.allTests
          KeyRangeProps.allTests
          FlatBufProps.allTests
          CompressionProps.allTests
          RowProps.allTests
          BlockProps.allTests
          BloomProps.allTests
          SstProps.allTests
          SequenceTrackerProps.allTests
          ManifestCodecProps.allTests
          PathsProps.allTests
          MergeProps.allTests
          CompactionStateProps.allTests
          RetentionProps.allTests
          SizeTieredProps.allTests
          CompactionProps.allTests
          CompactionModelProps.allTests
          CompatTests.allTests
          InteropTests.allTests
          ObjectStoreTests.allTests
          DecoratorTests.allTests
          S3StoreTests.allTests
          AzureStoreTests.allTests
          MemtableTests.allTests
          EngineTests.allTests
          EngineFlushTests.allTests
          CrashTests.allTests
          CloudEngineTests.allTests
          FacadeTests.allTests
          ConfigurationTests.allTests
          WalLimitTests.allTests
          ReaderTests.allTests
          AdminTests.allTests
          TransactionTests.allTests
          CompactorTests.allTests
          GcTests.allTests
          WatchTests.allTests
          WriteRowsProps.allTests
          BenchCliTests.allTests
          CliLogTests.allTests
          BackgroundTests.allTests
          CloneTests.allTests
          CompactionInteropTests.allTests
          SettleTests.allTests
          PanicTests.allTests
          FSharpApiTests.allTests ]

/// Wraps Expecto's printer so that the run ends with the plain line CI reads:
/// `tests: N passed, M failed` (errored tests count as failed).
let private withPlainSummary (printer: TestPrinters) : TestPrinters =
    { printer with
        summary =
            fun config summary ->
                async {
                    do! printer.summary config summary
                    let failed = summary.failed.Length + summary.errored.Length
                    printfn "tests: %d passed, %d failed" summary.passed.Length failed
                } }

[<EntryPoint>]
let main argv =
    let printer = withPlainSummary defaultConfig.printer
    runTestsWithCLIArgs [ CLIArguments.Printer printer; CLIArguments.No_Spinner ] argv allTests
