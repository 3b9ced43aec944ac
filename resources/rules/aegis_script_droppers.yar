/*
    Aegis bundled rules: obvious script droppers (download, then run).

    Severity "suspicious", kind "heuristic". Each rule needs several indicators together
    (a download, an execution, and something no ordinary installer line has: a hidden
    window, a raw IP address, an encoded command), on one line where that matters, so
    ordinary scripts and documentation do not match. For example the documented
    Chocolatey / Scoop install one-liners (download + Invoke-Expression from a named https
    host, no hidden window) deliberately do not match.

    Every rule skips YARA rule sources (files with "rule NAME" and "condition:" lines), so
    that rule packs, including this one, are not reported.
*/

private rule Aegis_Droppers_IsRuleSource
{
    strings:
        $rule = /(^|\n)[ \t]*((private|global)[ \t]+)*rule[ \t]+[A-Za-z_][A-Za-z0-9_]*/
        $cond = /\n[ \t]*condition[ \t]*:/

    condition:
        $rule and $cond
}

rule Aegis_Script_PowerShell_DownloadCradle
{
    meta:
        description = "PowerShell download-and-execute cradle started with a hidden window or fetching from a raw IP address"
        author = "Aegis"
        date = "2026-11-22"
        severity = "suspicious"
        score = 70
        aegis_kind = "heuristic"

    strings:
        // Download and run in one expression, on one line:
        //   iex (...).DownloadString(   |   .DownloadString(...) | iex   |   iwr URL | iex
        //   iex (iwr ...)   |   .DownloadFile('http..') ... Start-Process   |   [scriptblock]::Create(...)
        $cradle = /(\b(iex|invoke-expression)[\s(]{1,10}[^\n]{0,200}\.download(string|data)\s*\(|\.download(string|data)\s*\([^\n]{0,300}\|\s*(iex|invoke-expression)\b|\b(iwr|irm|invoke-webrequest|invoke-restmethod)\s[^\n|]{0,300}\|\s*(iex|invoke-expression)\b|\b(iex|invoke-expression)[\s(]{1,10}[^\n]{0,100}\b(iwr|irm|invoke-webrequest|invoke-restmethod)\s|\.downloadfile\s*\(\s*['"]https?:\/\/[^\n]{0,400}\b(start-process|saps|invoke-item)\s|\[scriptblock\]::create\s*\([^\n]{0,100}\.download(string|data)\s*\()/ nocase
        // A hidden window earlier on the same line: the match runs on to the end of the line.
        $hidden = /\s[-\/]w[a-z]{0,10}\s+['"]?hid(den)?\b[^\n]{0,300}/ nocase
        $hidden_num = /\b(powershell|pwsh)[^\n]{0,200}\s[-\/]w[a-z]{0,10}\s+['"]?1\b[^\n]{0,300}/ nocase
        // A raw IP address URL: must be the cradle's own URL.
        $ipurl = /https?:\/\/(25[0-5]|2[0-4][0-9]|1[013-9][0-9]|12[0-689]|[1-9][0-9]?)\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}[:\/'"]/

    condition:
        filesize < 5MB and $cradle and not Aegis_Droppers_IsRuleSource and
        for any i in (1..#cradle) : (
            for any j in (1..#hidden) : (
                @cradle[i] > @hidden[j] and @cradle[i] < @hidden[j] + !hidden[j]
            ) or
            for any j in (1..#hidden_num) : (
                @cradle[i] > @hidden_num[j] and @cradle[i] < @hidden_num[j] + !hidden_num[j]
            ) or
            $ipurl in (@cradle[i] .. @cradle[i] + !cradle[i] + 20)
        )
}

rule Aegis_Script_PowerShell_EncodedCommand_Hidden
{
    meta:
        description = "PowerShell started with a hidden window and a long encoded command"
        author = "Aegis"
        date = "2026-11-22"
        severity = "suspicious"
        score = 60
        aegis_kind = "heuristic"

    strings:
        $hidden_first = /\b(powershell|pwsh)(\.exe)?['"]?\s[^\n]{0,200}[-\/]w[a-z]{0,10}\s+['"]?(hid(den)?|1)\b[^\n]{0,200}\s[-\/]e[a-z]{0,13}\s+['"]?[A-Za-z0-9+\/]{100}/ nocase
        $encoded_first = /\b(powershell|pwsh)(\.exe)?['"]?\s[^\n]{0,200}\s[-\/]e[a-z]{0,13}\s+['"]?[A-Za-z0-9+\/]{100}[A-Za-z0-9+\/=]{0,4000}['"]?\s+[-\/]w[a-z]{0,10}\s+['"]?(hid(den)?|1)\b/ nocase

    condition:
        filesize < 5MB and any of them and not Aegis_Droppers_IsRuleSource
}

rule Aegis_Script_PowerShell_EncodedCradle
{
    meta:
        description = "PowerShell encoded command that downloads and runs code"
        author = "Aegis"
        date = "2026-11-22"
        severity = "suspicious"
        score = 70
        aegis_kind = "heuristic"

    strings:
        $ps = /\b(powershell|pwsh)(\.exe)?['"]?\s[^\n]{0,200}\s[-\/]e[a-z]{0,13}\s+['"]?[A-Za-z0-9+\/]{40}/ nocase
        // The same words as UTF-16LE then base64 ("wide base64"), as -EncodedCommand carries them.
        $w1 = "DownloadString" wide base64
        $w2 = "downloadstring" wide base64
        $w3 = "DownloadData" wide base64
        $w4 = "DownloadFile" wide base64
        $w5 = "downloadfile" wide base64
        $w6 = "Net.WebClient" wide base64
        $w7 = "net.webclient" wide base64
        $w8 = "Invoke-WebRequest" wide base64
        $w9 = "invoke-webrequest" wide base64
        $w10 = "Invoke-Expression" wide base64
        $w11 = "invoke-expression" wide base64

    condition:
        // The encoded words must be in the command that follows "powershell ... -e".
        filesize < 5MB and $ps and not Aegis_Droppers_IsRuleSource and
        for any of ($w*) : (for any i in (1..#ps) : ($ in (@ps[i] .. @ps[i] + 12000)))
}

rule Aegis_Script_VBS_JS_Dropper
{
    meta:
        description = "VBScript/JScript dropper: HTTP download saved with ADODB.Stream, then run"
        author = "Aegis"
        date = "2026-11-22"
        severity = "suspicious"
        score = 70
        aegis_kind = "heuristic"

    strings:
        $http = /(msxml2\.(server)?xmlhttp|microsoft\.xmlhttp|winhttp\.winhttprequest)/ nocase
        $stream = /adodb\.stream/ nocase
        $save = /\.savetofile\b/ nocase
        $wsh = /wscript\.shell/ nocase
        $run = /\.(run|exec)\s*[( "']/ nocase
        $shapp = /shell\.application/ nocase
        $shexec = /\.shellexecute\b/ nocase

    condition:
        filesize < 2MB and
        $http and $stream and $save and
        (($wsh and $run) or ($shapp and $shexec)) and
        not Aegis_Droppers_IsRuleSource
}

rule Aegis_Script_HTA_Launcher
{
    meta:
        description = "HTML application (HTA) that downloads a file or starts a command-line downloader"
        author = "Aegis"
        date = "2026-11-22"
        severity = "suspicious"
        score = 70
        aegis_kind = "heuristic"

    strings:
        $hta = /<hta:application\b/ nocase
        $wsh = /wscript\.shell/ nocase
        $launch = /\.(run|exec)\s*\(?\s*["'][^"'\n]{0,60}\b(powershell|pwsh|cmd(\.exe)?\s+\/[ck]|mshta|certutil|bitsadmin|rundll32|regsvr32)\b[^\n]{0,400}(https?:\/\/|\s[-\/]e[a-z]{0,13}\s+['"]?[A-Za-z0-9+\/]{60})/ nocase
        $http = /(msxml2\.(server)?xmlhttp|microsoft\.xmlhttp|winhttp\.winhttprequest)/ nocase
        $stream = /adodb\.stream/ nocase
        $save = /\.savetofile\b/ nocase

    condition:
        filesize < 2MB and
        $hta and $wsh and ($launch or ($http and $stream and $save)) and
        not Aegis_Droppers_IsRuleSource
}

rule Aegis_Script_VBA_AutoExec_Downloader
{
    meta:
        description = "Office macro (VBA source) that runs on open, downloads and executes"
        author = "Aegis"
        date = "2026-11-22"
        severity = "suspicious"
        score = 70
        aegis_kind = "heuristic"

    strings:
        $auto = /\bsub\s+(autoopen|auto_open|document_open|documentopen|workbook_open|workbook_activate|autoexec|autoclose|auto_close|document_close)\s*\(/ nocase
        $dl1 = /\burldownloadtofile[aw]?\b/ nocase
        $dl2 = /(msxml2\.(server)?xmlhttp|microsoft\.xmlhttp|winhttp\.winhttprequest)/ nocase
        $dl3 = /\b(powershell|pwsh)[^\n]{0,300}(https?:|downloadstring|downloadfile|\s[-\/]e[a-z]{0,13}\s+['"]?[A-Za-z0-9+\/]{60})/ nocase
        $dl4 = /\b(certutil|bitsadmin|mshta)[^\n]{0,200}https?:/ nocase
        $ex1 = /\bshell\s*\(/ nocase
        $ex2 = /createobject\s*\(\s*"wscript\.shell"\s*\)/ nocase
        $ex3 = /\.shellexecute\b/ nocase
        $ex4 = /win32_process["']?\s*\)?\s*\.create\b/ nocase

    condition:
        filesize < 5MB and
        $auto and any of ($dl*) and any of ($ex*) and
        not Aegis_Droppers_IsRuleSource
}

rule Aegis_Script_Shell_DownloadExec_RawIP
{
    meta:
        description = "Shell one-liner that downloads from a raw IP address and runs it (pipe to a shell, or chmod and execute)"
        author = "Aegis"
        date = "2026-11-22"
        severity = "suspicious"
        score = 70
        aegis_kind = "heuristic"

    strings:
        $pipe = /\b(curl|wget)\s[^\n|;&]{0,200}https?:\/\/(25[0-5]|2[0-4][0-9]|1[013-9][0-9]|12[0-689]|[1-9][0-9]?)\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}[:\/][^\n|;&]{0,200}\|\s*(sudo\s+)?(ba|da|z|k)?sh\b/
        $subst = /\b(ba|da|z|k)?sh\s+-c\s+["']?\$\(\s*(curl|wget)\s[^\n)]{0,200}https?:\/\/(25[0-5]|2[0-4][0-9]|1[013-9][0-9]|12[0-689]|[1-9][0-9]?)\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}[:\/]/
        $chmod = /\b(curl|wget)\s[^\n]{0,200}https?:\/\/(25[0-5]|2[0-4][0-9]|1[013-9][0-9]|12[0-689]|[1-9][0-9]?)\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}[:\/][^\n]{0,300}\bchmod\s+(\+x|[0-7]?7[0-7][0-7])\s[^\n]{0,200}(\.\/|\bsh\s|\/tmp\/)/

    condition:
        filesize < 2MB and any of them and not Aegis_Droppers_IsRuleSource
}
