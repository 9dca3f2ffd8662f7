module Slate.Properties.PathsProps

open Expecto

let allTests = testList "Paths" []
