module Slate.Properties.CompactionStateProps

open Expecto

let allTests = testList "CompactionState" []
