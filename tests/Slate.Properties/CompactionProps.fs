module Slate.Properties.CompactionProps

open Expecto

let allTests = testList "Compaction" []
