/// FsCheck generators shared by all property files (keys with shared prefixes, 0x00/0xFF bytes,
/// rows with every flag combination). Used through `TestUtil.testProp`, never `Arb.Register`.
module Slate.Properties.Generators

open FsCheck
open FsCheck.FSharp
open Slate.Model

/// Small alphabets make shared prefixes and duplicates likely; 0x00 and 0xFF are always in.
let byteGen: Gen<byte> =
    Gen.frequency
        [ 3, Gen.elements [ 0uy; 0xFFuy; 1uy; 0xFEuy; 0x61uy; 0x62uy ]
          2, Gen.choose (0, 255) |> Gen.map byte ]

/// Non-empty keys of 1..24 bytes, biased to shared prefixes.
let keyGen: Gen<byte[]> =
    gen {
        let! n = Gen.frequency [ 4, Gen.choose (1, 6); 2, Gen.choose (7, 24) ]
        let! bytes = Gen.arrayOfLength n byteGen
        return bytes
    }

/// Values: often empty or small, sometimes a few hundred bytes.
let valueGen: Gen<byte[]> =
    Gen.frequency
        [ 1, Gen.constant [||]
          5,
          Gen.choose (1, 32)
          |> Gen.bind (fun n -> Gen.arrayOfLength n (Gen.choose (0, 255) |> Gen.map byte))
          1,
          Gen.choose (33, 600)
          |> Gen.bind (fun n -> Gen.arrayOfLength n (Gen.choose (0, 255) |> Gen.map byte)) ]

/// Timestamps across the whole i64 range, biased to plausible ms values.
let tsGen: Gen<int64> =
    Gen.frequency
        [ 4, Gen.choose (0, 1_000_000) |> Gen.map (fun x -> 1_700_000_000_000L + int64 x)
          1, Gen.elements [ System.Int64.MinValue; System.Int64.MaxValue; 0L; -1L ] ]

/// Row values of every kind.
let rowValueGen: Gen<RowValue> =
    Gen.frequency
        [ 5, valueGen |> Gen.map RowValue.Value
          2, Gen.constant RowValue.Tombstone
          1, valueGen |> Gen.map RowValue.Merge ]

/// A row with a given key and seq, random value and timestamps (tombstones carry no expire_ts).
let rowWith (key: byte[]) (seq: uint64) : Gen<RowEntry> =
    gen {
        let! v = rowValueGen
        let! c = Gen.optionOf tsGen
        let! e = Gen.optionOf tsGen

        return
            { Key = key
              Value = v
              Seq = seq
              CreateTs = c
              ExpireTs = (if v = RowValue.Tombstone then None else e) }
    }

/// Any single row.
let rowGen: Gen<RowEntry> =
    gen {
        let! k = keyGen
        let! s = Gen.choose64 (0L, System.Int64.MaxValue) |> Gen.map uint64
        return! rowWith k s
    }

/// Rows sorted (key asc, seq desc) with unique (key, seq): the order of a compacted SST.
/// Several versions of one key are common.
let sortedRowsGen: Gen<RowEntry list> =
    gen {
        let! keys = Gen.listOf keyGen
        let keys = keys |> List.distinctBy Bytes.toHex |> List.sortWith Bytes.compare

        let! perKey =
            keys
            |> List.map (fun k ->
                gen {
                    let! n = Gen.frequency [ 6, Gen.constant 1; 2, Gen.choose (2, 4) ]
                    let! seqs = Gen.listOfLength n (Gen.choose (1, 100_000) |> Gen.map uint64)
                    let seqs = seqs |> List.distinct |> List.sortDescending
                    let! rows = seqs |> List.map (rowWith k) |> Gen.sequenceToList
                    return rows
                })
            |> Gen.sequenceToList

        return List.concat perKey
    }

/// Holder for `Arbitrary` instances that properties can opt into via the config.
type Arbs =
    static member Row() : Arbitrary<RowEntry> = Arb.fromGen rowGen
