<#
.SYNOPSIS
    The whole study in one go: fetch the model, run the baseline sweep (P1) and the ablation
    sweep (P2), and write a report for each. PowerShell counterpart of run_pipeline.sh.

.EXAMPLE
    pwsh examples/run_pipeline.ps1 -OutDir results/pipeline
.EXAMPLE
    pwsh examples/run_pipeline.ps1 -FetchArgs 'tinyllama-1.1b-chat:Q4_0' -SkipAblation

.NOTES
    Results: OutDir/p1_baseline, OutDir/p2_ablation (sweep results), OutDir/report_p1,
    OutDir/report_p2 (reports). Any failing step stops the script. Rerunning with the same
    OutDir resumes an interrupted sweep (finished runs are kept).
#>
[CmdletBinding()]
param(
    # Where results and reports go.
    [string]$OutDir = 'results/pipeline',
    # The energybench executable (e.g. the full path of energybench.exe in a virtual environment).
    [string]$Energybench = 'energybench',
    # What to fetch first; for the real model: @('tinyllama-1.1b-chat:Q4_0').
    [string[]]$FetchArgs = @('--synthetic', 'tinyllama-1.1b', '--quant', 'Q4_0'),
    [string]$P1Config = (Join-Path $PSScriptRoot 'p1_baseline.yaml'),
    [string]$P2Config = (Join-Path $PSScriptRoot 'p2_ablation.yaml'),
    # Run the baseline only (e.g. no GPU for the offload points).
    [switch]$SkipAblation
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
# PowerShell 7.3+: a native command that exits non-zero raises an error too.
$PSNativeCommandUseErrorActionPreference = $true

function Invoke-Energybench {
    param([Parameter(Mandatory = $true)][string[]]$Arguments)
    Write-Host "+ $Energybench $($Arguments -join ' ')"
    & $Energybench @Arguments
    if ($LASTEXITCODE -ne 0) {
        throw "energybench $($Arguments[0]) failed with exit code $LASTEXITCODE"
    }
}

# Start a sweep, or resume it if the directory already holds one.
function Invoke-Sweep {
    param([Parameter(Mandatory = $true)][string]$Config, [Parameter(Mandatory = $true)][string]$Dir)
    Invoke-Energybench @('config', 'validate', $Config)
    if (Test-Path -LiteralPath (Join-Path $Dir 'metadata.json')) {
        Invoke-Energybench @('sweep', '--resume', $Dir)
    } else {
        Invoke-Energybench @('sweep', '--config', $Config, '--out', $Dir)
    }
}

New-Item -ItemType Directory -Force -Path $OutDir | Out-Null
$p1Out = Join-Path $OutDir 'p1_baseline'
$p2Out = Join-Path $OutDir 'p2_ablation'

Write-Host '== 1/4 fetch the model'
Invoke-Energybench (@('fetch') + $FetchArgs)

Write-Host '== 2/4 baseline sweep (P1)'
Invoke-Sweep -Config $P1Config -Dir $p1Out

if (-not $SkipAblation) {
    Write-Host '== 3/4 ablation sweep (P2)'
    Invoke-Sweep -Config $P2Config -Dir $p2Out
} else {
    Write-Host '== 3/4 ablation sweep skipped (-SkipAblation)'
}

Write-Host '== 4/4 reports'
Invoke-Energybench @('report', $p1Out, '-o', (Join-Path $OutDir 'report_p1'))
if (-not $SkipAblation) {
    Invoke-Energybench @('report', $p2Out, '-o', (Join-Path $OutDir 'report_p2'))
}

Write-Host "done: results and reports in $OutDir"
