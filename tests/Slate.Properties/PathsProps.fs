module Slate.Properties.PathsProps

open Expecto
open FsCheck
open FsCheck.FSharp
open Slate.Model
open Slate.Properties.TestUtil

let private ulidGen: Gen<Ulid> =
    gen {
        let! ts = Gen.choose64 (0L, (1L <<< 48) - 1L)
        let! hi = Gen.choose (0, 65535)
        let! lo = Gen.choose64 (System.Int64.MinValue, System.Int64.MaxValue)
        return Ulid.create ts (uint16 hi) (uint64 lo)
    }

let private nameGen: Gen<ObjectName> =
    let id = Gen.choose64 (0L, System.Int64.MaxValue) |> Gen.map uint64

    Gen.oneof
        [ id |> Gen.map (fun i -> ObjectName.Manifest(max 1UL i))
          id |> Gen.map ObjectName.Compactions
          id |> Gen.map ObjectName.Wal
          ulidGen |> Gen.map ObjectName.Compacted
          Gen.constant ObjectName.ManifestBoundary
          Gen.constant ObjectName.CompactionsBoundary ]

let allTests =
    testList
        "Paths"
        [ testProp "parse (name x) = x for every object and database path"
          <| Prop.forAll (Arb.fromGen (Gen.zip nameGen (Gen.elements [ ""; "db"; "a/b/c"; "/x/" ]))) (fun (n, db) ->
              Paths.parseKey db (Paths.key db n) = Some n)

          testProp "D20 names sort like their ids"
          <| Prop.forAll (Arb.fromGen (Gen.two (Gen.choose64 (1L, System.Int64.MaxValue)))) (fun (a, b) ->
              let na = Paths.relative (ObjectName.Wal(uint64 a))
              let nb = Paths.relative (ObjectName.Wal(uint64 b))
              sign (System.String.CompareOrdinal(na, nb)) = sign (compare a b))

          test "exact names" {
              Expect.equal
                  (Paths.key "db" (ObjectName.Manifest 1UL))
                  "db/manifest/00000000000000000001.manifest"
                  "manifest"

              Expect.equal (Paths.relative (ObjectName.Wal 42UL)) "wal/00000000000000000042.sst" "wal"

              Expect.equal
                  (Paths.relative (ObjectName.Wal System.UInt64.MaxValue))
                  "wal/18446744073709551615.sst"
                  "max id"

              Expect.equal (Paths.relative ObjectName.ManifestBoundary) "gc/manifest.boundary" "boundary"
          }

          test "ULID names parse in upper and lower case and round-trip to upper case" {
              let n = "01M85603EA3SDGQJXH2BFT43F9.sst"

              match Paths.parseFile Paths.CompactedDir n, Paths.parseFile Paths.CompactedDir (n.ToLowerInvariant()) with
              | Some(ObjectName.Compacted a), Some(ObjectName.Compacted b) ->
                  Expect.equal a b "same ULID"
                  Expect.equal (Paths.relative (ObjectName.Compacted a)) ("compacted/" + n) "upper case"
              | other -> failtestf "did not parse: %A" other
          }

          test "foreign names are rejected" {
              let bad =
                  [ Paths.ManifestDir, "00000000000000000000.manifest" // id 0
                    Paths.ManifestDir, "0000000000000000001.manifest" // 19 digits
                    Paths.ManifestDir, "00000000000000000001.manifest.tmp"
                    Paths.ManifestDir, "x0000000000000000001.manifest"
                    Paths.ManifestDir, "99999999999999999999.manifest" // > u64
                    Paths.WalDir, "00000000000000000001.SST"
                    Paths.WalDir, "1.sst"
                    Paths.CompactedDir, "01M85603EA3SDGQJXH2BFT43FI.sst" // I is not Crockford
                    Paths.CompactedDir, "81M85603EA3SDGQJXH2BFT43F9.sst" // overflows 128 bits
                    Paths.CompactedDir, "01M85603EA3SDGQJXH2BFT43F.sst"
                    Paths.GcDir, "wal.boundary"
                    "other", "00000000000000000001.sst" ]

              for (dir, file) in bad do
                  Expect.isNone (Paths.parseFile dir file) (sprintf "%s/%s must not parse" dir file)

              Expect.isNone (Paths.parseKey "db" "other/manifest/00000000000000000001.manifest") "other database"
              Expect.isNone (Paths.parseKey "db" "db/manifest/sub/00000000000000000001.manifest") "nested"
          } ]
